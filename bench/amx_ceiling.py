#!/usr/bin/env python
"""How close the README model's bfloat16 FOV comes to this CPU's bfloat16 matmul rate.

  python bench/amx_ceiling.py [--rounds 8] [--size 2048]

Compiles, for OpenVINO's CPU plugin in bfloat16 (LATENCY hint, as the fast
config runs), a chain of two `--size`^2 matmuls and the README model (fib25
checkpoint, one 33^3 FOV), then times them alternately, five calls each per
round, and prints each one's median and best TFLOP/s. A model far below the
matmul rate would leave room for faster kernels; near or above it, the
machine is the limit.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import openvino  # pylint: disable=g-import-not-at-top,wrong-import-position
from openvino import opset13 as ops  # pylint: disable=g-import-not-at-top,wrong-import-position

from ffn.training import checkpoint  # pylint: disable=g-import-not-at-top,wrong-import-position
from ffn.training import import_util  # pylint: disable=g-import-not-at-top,wrong-import-position
import readme_model  # bench/, the script's own directory

CONFIG = {'INFERENCE_PRECISION_HINT': 'bf16', 'PERFORMANCE_HINT': 'LATENCY'}


def _conv_flops(depth: int, fov: int = 33, features: int = 32) -> float:
  """Multiply-adds x2 of the model's 3x3x3 convolutions on one FOV (2 input channels first)."""
  voxels = fov ** 3
  first = voxels * 27 * 2 * features
  middle = voxels * 27 * features * features * (2 * depth - 1)
  last = voxels * features
  return 2.0 * (first + middle + last)


def _time(request, inputs, calls: int) -> list[float]:
  times = []
  for _ in range(calls):
    start = time.perf_counter()
    request.infer(inputs)
    times.append(time.perf_counter() - start)
  return times


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rounds', type=int, default=8)
  parser.add_argument('--size', type=int, default=2048)
  args = parser.parse_args()
  n = args.size
  core = openvino.Core()
  rng = np.random.default_rng(0)
  a = ops.parameter([n, n], np.float32, name='a')
  w = ops.constant(rng.normal(size=(n, n)).astype(np.float32))
  chain = openvino.Model([ops.matmul(ops.matmul(a, w, False, False), w, False, False)], [a])
  matmul = core.compile_model(chain, 'CPU', CONFIG).create_infer_request()
  model = import_util.build_model(readme_model.MODEL_NAME, readme_model.MODEL_ARGS)
  checkpoint.restore_model(model, readme_model.CHECKPOINT)
  fov = core.compile_model(openvino.convert_model(model.predict_logits), 'CPU',
                           CONFIG).create_infer_request()
  matrix = rng.normal(size=(n, n)).astype(np.float32)
  image = rng.normal(size=(1, 33, 33, 33, 1)).astype(np.float32)
  inputs = {'matmul': [matrix], 'fov': [image, np.full_like(image, -2.0)]}
  requests = {'matmul': matmul, 'fov': fov}
  for name, request in requests.items():
    _time(request, inputs[name], 3)  # Warm-up.
  times = {name: [] for name in requests}
  for _ in range(args.rounds):
    for name, request in requests.items():
      times[name] += _time(request, inputs[name], 5)
  flops = {'matmul': 2 * 2 * n ** 3, 'fov': _conv_flops(readme_model.MODEL_ARGS['depth'])}
  labels = {'matmul': f'two {n}^2 matmuls', 'fov': 'README model, one 33^3 FOV'}
  print(f'OpenVINO {openvino.__version__}, bfloat16, LATENCY hint, {os.cpu_count()} CPUs; '
        f'{args.rounds} rounds of 5 calls each, alternated')
  for name in requests:
    t = np.array(times[name])
    print(f'{labels[name]:28s} {flops[name] / 1e9:6.1f} GFLOP  median {1000 * np.median(t):6.1f} ms '
          f'({flops[name] / np.median(t) / 1e12:.2f} TFLOP/s)  best {1000 * t.min():6.1f} ms '
          f'({flops[name] / t.min() / 1e12:.2f} TFLOP/s)')
  ratio = (flops['fov'] / np.median(times['fov'])) / (flops['matmul'] / np.median(times['matmul']))
  print(f'model / matmul rate (medians): {ratio:.2f}')


if __name__ == '__main__':
  main()
