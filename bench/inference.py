#!/usr/bin/env python
"""Inference speed on a crop of the bundled sample: FOVs/s and overhead around the model.

  python bench/inference.py [--size 100] [--forward_reps 20]

Segments the crop start (0,0,0), size `--size`^3 (xyz) of training_sample2 with
the bundled checkpoint and the sample config, into `--output_dir` (default: a
temporary directory), then
prints:
  * FOVs per second over the whole run;
  * the share of wall time spent inside the model call;
  * the ratio of our time per FOV to a bare forward pass (model.predict_logits
    at batch 1 on a fixed input), measured in the same process.
"""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from ffn.inference import run_request  # pylint: disable=g-import-not-at-top,wrong-import-position
from ffn.inference import runner as runner_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_integer('size', 100, 'Edge of the cubic crop to segment (voxels).')
flags.DEFINE_integer('forward_reps', 20, 'Timed bare forward passes.')
flags.DEFINE_string('output_dir', None,
                    'Where to keep the segmentation (default: a temporary directory).')
flags.DEFINE_string('config', str(REPO_ROOT / 'configs' / 'inference_training_sample2.pbtxt'),
                    'InferenceRequest text file.')


class _TimedModel:
  """Wraps a model so that the time inside predict_logits (to numpy) is measured."""

  def __init__(self, model):
    self._model = model
    self.info = model.info
    self.seconds = 0.0
    self.calls = 0

  def predict_logits(self, image, seed):
    start = time.perf_counter()
    out = self._model.predict_logits(image, seed).numpy()
    self.seconds += time.perf_counter() - start
    self.calls += 1
    return out


def _bare_forward_seconds(model, reps: int) -> float:
  """Median seconds of one batch-1 forward pass on a fixed random FOV."""
  rng = np.random.RandomState(0)
  image = rng.randn(1, *model.info.input_image_size[::-1], 1).astype(np.float32)
  seed = rng.randn(1, *model.info.input_seed_size[::-1], 1).astype(np.float32)
  model.predict_logits(image, seed).numpy()  # warm-up
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    model.predict_logits(image, seed).numpy()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def main(argv):
  del argv
  os.chdir(REPO_ROOT)
  with tempfile.TemporaryDirectory() as tmp_dir:
    out_dir = FLAGS.output_dir or tmp_dir
    request = run_request.parse_request(pathlib.Path(FLAGS.config).read_text())
    request.segmentation_output_dir = out_dir
    request.checkpoint_interval = 0
    runner = runner_lib.Runner()
    runner.prepare(request)
    real_model = runner._load_model()  # pylint: disable=protected-access
    bare_before = _bare_forward_seconds(real_model, FLAGS.forward_reps)
    timed = _TimedModel(real_model)
    runner.load_model(timed)
    size = (FLAGS.size,) * 3
    start = time.perf_counter()
    canvas = runner.run((0, 0, 0), size)
    wall = time.perf_counter() - start
    runner.stop_executor()
    bare_after = _bare_forward_seconds(real_model, FLAGS.forward_reps)

  bare = (bare_before + bare_after) / 2
  fovs = timed.calls
  per_fov = wall / max(fovs, 1)
  print(f'crop: start (0,0,0) size {FLAGS.size}^3; segments: {len(canvas.origins)}')
  print(f'FOVs: {fovs} in {wall:.1f} s wall -> {fovs / wall:.2f} FOVs/s')
  print(f'time inside the model call: {timed.seconds:.1f} s = '
        f'{100 * timed.seconds / wall:.1f}% of wall time')
  print(f'bare forward pass (batch 1): {1000 * bare:.1f} ms '
        f'(before {1000 * bare_before:.1f}, after {1000 * bare_after:.1f})')
  print(f'our time per FOV: {1000 * per_fov:.1f} ms = {per_fov / bare:.3f} x bare forward '
        f'(overhead {100 * (per_fov / bare - 1):.1f}%)')
  logging.info('done')


if __name__ == '__main__':
  app.run(main)
