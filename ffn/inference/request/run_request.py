"""The work behind run_inference.py: parse a request and a box, segment, write counters."""

from __future__ import annotations

import logging
import os
import time
from typing import Callable, Sequence

from google.protobuf import text_format

from ffn.inference import inference_pb2
from ffn.inference.request import runner as runner_lib
from ffn.utils import bounding_box
from ffn.utils import bounding_box_pb2
from ffn.utils import errors


def _parse_text(text: str, proto, flag: str, expected: str):
  """Fills `proto` from text format; ValueError naming `flag` and the bad field."""
  try:
    text_format.Parse(text or '', proto)
  except text_format.ParseError as e:
    raise errors.FFNError(f'--{flag} is not a valid {expected}: {e}') from e
  return proto


def parse_request(text: str, flag: str = 'inference_request') -> inference_pb2.InferenceRequest:
  """An InferenceRequest from the text format of flag --`flag`; FFNError naming the bad field."""
  return _parse_text(text, inference_pb2.InferenceRequest(), flag, 'InferenceRequest')


def parse_bounding_box(text: str, flag: str = 'bounding_box') -> bounding_box.BoundingBox:
  """A BoundingBox (xyz) from the text-format BoundingBox proto of flag --`flag`."""
  proto = _parse_text(text, bounding_box_pb2.BoundingBox(), flag, 'BoundingBox')
  if not proto.HasField('size'):
    raise errors.FFNError(f'--{flag} {text!r} has no size')
  start = (proto.start.x, proto.start.y, proto.start.z)
  if min(start) < 0:
    # Results are named by their start; a negative one would segment padding.
    raise errors.FFNError(f'--{flag} start (xyz) {start} is negative; the volume begins at '
                          '0,0,0')
  return bounding_box.BoundingBox(proto)


def run_inference(request: inference_pb2.InferenceRequest,
                  boxes: Sequence[bounding_box.BoundingBox],
                  reuse_mismatched_results: bool = False,
                  stop_requested: Callable[[], bool] = lambda: False) -> runner_lib.Runner:
  """Segments the (xyz) boxes as `request` says; writes `<output dir>/counters.txt` at the end.

  Several boxes go `concurrent_requests` at a time through one engine. A
  finished result made with other settings is an error unless
  `reuse_mismatched_results`; `stop_requested()` stops at the next consistent
  point (see Runner).
  """
  runner = runner_lib.Runner(request, reuse_mismatched_results=reuse_mismatched_results,
                             stop_requested=stop_requested)
  # Fail before any output exists (and before the model is built) on a bad box.
  for box in boxes:
    runner.check_box(box.start_zyx, box.size_zyx)
  with runner:
    start = time.time()
    runner.segment_many(boxes)
    logging.info('Inference done in %.1f s.', time.time() - start)
  counter_path = os.path.join(request.segmentation_output_dir, 'counters.txt')
  if not os.path.exists(counter_path):
    runner.counters.dump(counter_path)
  return runner
