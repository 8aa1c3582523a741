#!/usr/bin/env python
"""Whether a batched model call gives each FOV the logits of a call of one, per engine and precision.

  python bench/batching.py [--runs tensorflow:float32,openvino:float32,openvino:bfloat16]
                           [--batch_sizes 2,4,16]

Restores the bundled checkpoint once per engine:precision, cuts FOVs of the
bundled sample at fixed places (seeded as a new object: pad_value around,
init_activation at the centre), and compares the logits of batched calls
with those of one FOV per call: values that differ, and the largest
difference. Batched calls whose logits are identical give subvolumes grown
several at a time (--subvolumes_per_worker) the one-at-a-time result voxel
for voxel.
"""

from __future__ import annotations

import os
import pathlib
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
from ffn.inference import inference_pb2
from ffn.inference.request import run_request
from ffn.inference.request import runner as runner_lib
from ffn.utils import probability
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_list('runs', ['tensorflow:float32', 'tensorflow:bfloat16', 'openvino:float32',
                           'openvino:bfloat16'], 'engine:precision to compare.')
flags.DEFINE_list('batch_sizes', ['2', '4', '16'], 'Batch sizes to compare with batch 1.')
flags.DEFINE_string('config', str(REPO_ROOT / 'configs' / 'inference_training_sample2.pbtxt'),
                    'InferenceRequest text file (its engine and precision are replaced).')


def _request(engine: str, precision: str) -> inference_pb2.InferenceRequest:
  request = run_request.parse_request(pathlib.Path(FLAGS.config).read_text())
  request.engine = inference_pb2.InferenceRequest.Engine.Value(engine.upper())
  request.precision = inference_pb2.InferenceRequest.Precision.Value(precision.upper())
  request.ClearField('concurrent_objects')
  return request


def _fovs(runner, count: int) -> tuple[np.ndarray, np.ndarray]:
  """`count` normalised image FOVs of the sample and new-object seeds, [b, z, y, x, 1]."""
  fov = tuple(runner.model.info.input_image_size[::-1])
  options = runner.request.inference_options
  rng = np.random.default_rng(0)
  shape = runner.image_shape_zyx
  images = []
  for _ in range(count):
    corner = [int(rng.integers(0, n - f)) for n, f in zip(shape, fov)]
    image = runner.inputs.read_image(corner, fov).astype(np.float32)
    images.append((image - runner.plan.image_mean) / runner.plan.image_stddev)
  seed = np.full(fov, probability.logit(options.pad_value), np.float32)
  seed[tuple(f // 2 for f in fov)] = probability.logit(options.init_activation)
  return (np.stack(images)[..., np.newaxis],
          np.broadcast_to(seed, (count,) + fov)[..., np.newaxis].copy())


def _as_numpy(value) -> np.ndarray:
  return value.numpy() if hasattr(value, 'numpy') else np.asarray(value)


def main(argv):
  del argv
  os.chdir(REPO_ROOT)
  sizes = [int(b) for b in FLAGS.batch_sizes]
  print(f'{"engine":10s} {"precision":9s} {"batch":>5s} {"values":>9s} {"differing":>9s} '
        f'{"max |diff|":>10s}')
  for run in FLAGS.runs:
    engine, precision = run.split(':')
    with runner_lib.Runner(_request(engine, precision), batch_size=max(sizes)) as runner:
      predict = runner.model.predict_logits
      image, seed = _fovs(runner, max(sizes))
      single = np.concatenate([_as_numpy(predict(image[i:i + 1], seed[i:i + 1]))
                               for i in range(len(image))])
      for size in sizes:
        batched = _as_numpy(predict(image[:size], seed[:size]))
        diff = np.abs(batched - single[:size])
        settings = runner.engine_settings
        shown = settings.precision + ('' if settings.precision == precision else '*')
        print(f'{engine:10s} {shown:9s} {size:5d} {diff.size:9d} {int(np.sum(diff > 0)):9d} '
              f'{float(diff.max()):10.3g}')
  print('* the precision that ran where the one asked for would be emulated.')


if __name__ == '__main__':
  app.run(main)
