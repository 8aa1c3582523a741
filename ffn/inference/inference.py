"""Upstream's `ffn.inference.inference` names, for code written against it.

The Canvas lives in `canvas`, the Runner in `runner`; nothing in the package
imports this module. As upstream's, this Canvas takes its thresholds as an
InferenceOptions proto of probabilities.
"""

from __future__ import annotations

from ffn.inference import inference_pb2
from ffn.inference.growing import canvas as canvas_lib
from ffn.inference.growing import visualization as canvas_visualization
from ffn.inference.request import plan
from ffn.inference.request import runner

Runner = runner.Runner
DynamicImage = canvas_visualization.DynamicImage
MAX_SELF_CONSISTENT_ITERS = canvas_lib.MAX_SELF_CONSISTENT_ITERS


class Canvas(canvas_lib.Canvas):
  """The Canvas, built as upstream code builds it: `options` is an InferenceOptions proto."""

  def __init__(self, model_info, executor, image, options: inference_pb2.InferenceOptions,
               **kwargs):
    super().__init__(model_info, executor, image, plan.CanvasOptions.from_proto(options),
                     **kwargs)
