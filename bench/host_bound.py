#!/usr/bin/env python
"""The fastest this machine can run the README's main job now: the model calls alone.

  python bench/host_bound.py [--rounds 100] [--fovs 25709]

Times the README model's FOV (fib25 checkpoint, 33^3) alternately, round by
round: in OpenVINO bfloat16 as the fast config runs it, one call on every CPU
at once (one thread each, pinned, called side by side as objects at once are)
and one call on all CPUs together; and in TensorFlow float32 on all CPUs, as
upstream's config runs. It prints each one's mean, median and fastest, and
what they bound for --fovs FOVs (the whole sample's 25,709) with nothing but
model calls:
- objects at once, one per CPU, always overlapping: fovs / (sum of the CPUs'
  call rates);
- one object at a time: fovs x the all-CPU call;
- the most that OpenVINO bfloat16 one at a time can gain over TensorFlow float32.
On shared machines each CPU's speed changes from second to second; the bound
is for the minutes this ran.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from ffn.inference.engines import settings as engine_settings  # pylint: disable=g-import-not-at-top,wrong-import-position
from ffn.training import checkpoint  # pylint: disable=g-import-not-at-top,wrong-import-position
from ffn.training import import_util  # pylint: disable=g-import-not-at-top,wrong-import-position
import readme_model  # bench/, the script's own directory


def _timed_calls(model, inputs, calls: int) -> list[float]:
  """Milliseconds of `calls` calls of model.predict_logits(*inputs)."""
  times = []
  for _ in range(calls):
    start = time.perf_counter()
    model.predict_logits(*inputs)
    times.append(1000 * (time.perf_counter() - start))
  return times


def _row(name: str, times: list[float]) -> float:
  mean = float(np.mean(times))
  print(f'{name:28s} calls {len(times):4d}  mean {mean:6.1f} ms  median '
        f'{np.median(times):6.1f} ms  fastest {min(times):6.1f} ms')
  return mean


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--rounds', type=int, default=100)
  parser.add_argument('--fovs', type=int, default=25709)
  args = parser.parse_args()
  os.chdir(REPO)
  model = import_util.build_model(readme_model.MODEL_NAME, readme_model.MODEL_ARGS)
  checkpoint.restore_model(model, readme_model.CHECKPOINT)
  settings = engine_settings.settings_for('openvino', 'bfloat16')
  if settings.precision != 'bfloat16':
    sys.exit(f'this CPU runs float32, not bfloat16: {settings.describe()}')
  every_cpu = engine_settings.build(model, settings)
  cpus = sorted(os.sched_getaffinity(0))
  own = {cpu: every_cpu.with_threads(1) for cpu in cpus}
  rng = np.random.default_rng(0)
  image = rng.normal(size=(1, 33, 33, 33, 1)).astype(np.float32)
  inputs = (image, np.full_like(image, -2.0))
  for engine in (every_cpu, model, *own.values()):
    _timed_calls(engine, inputs, 2)  # Compiles, traces and allocates.

  per_cpu = {cpu: [] for cpu in cpus}

  def on_cpu(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})  # This thread only; a one-thread call runs in it.
    per_cpu[cpu].extend(_timed_calls(own[cpu], inputs, 3))

  together, fp32 = [], []
  with concurrent.futures.ThreadPoolExecutor(len(cpus)) as threads:
    for _ in range(args.rounds):
      list(threads.map(on_cpu, cpus))
      together += _timed_calls(every_cpu, inputs, 3)
      fp32 += _timed_calls(model, inputs, 1)

  means = [_row(f'OpenVINO bf16, CPU {cpu} of {len(cpus)}', t) for cpu, t in per_cpu.items()]
  all_cpus = _row(f'OpenVINO bf16, {len(cpus)} CPUs', together)
  fp32_ms = _row(f'TensorFlow fp32, {len(cpus)} CPUs', fp32)
  print(f'{args.fovs} FOVs, model calls only, objects at once (one per CPU, always overlapping) '
        f'/ one object at a time: {_minutes(args.fovs, means):.1f} / '
        f'{_minutes(args.fovs, [all_cpus]):.1f} min; at the fastest calls seen: '
        f'{_minutes(args.fovs, [min(t) for t in per_cpu.values()]):.1f} / '
        f'{_minutes(args.fovs, [min(together)]):.1f} min')
  print(f'OpenVINO bf16 one object at a time gains at most {fp32_ms / all_cpus:.2f}x over '
        f'TensorFlow fp32 (the ratio of their mean calls)')


def _minutes(fovs: int, call_ms: list[float]) -> float:
  """Minutes for `fovs` FOVs shared by callers whose calls take `call_ms` each, side by side."""
  return fovs / sum(1000 / ms for ms in call_ms) / 60


if __name__ == '__main__':
  main()
