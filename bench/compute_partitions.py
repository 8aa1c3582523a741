#!/usr/bin/env python
"""Times ffn.training.partitions against a straightforward per-label full-volume loop.

Both run, in the same process, the README invocation (thresholds 0.025..0.9,
lom_radius 24,24,24, min_size 10000) on the bundled groundtruth; the bench checks
that the two maps are identical and prints both times, the speed-up and the peak
memory of each (traced numpy allocations, plus the process's peak RSS).

  python bench/compute_partitions.py [--volume path.h5:dataset] [--skip_naive]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ffn.training import partitions  # pylint: disable=wrong-import-position
from ffn.utils import labels as segmentation  # pylint: disable=g-import-not-at-top,wrong-import-position
from ffn.utils import volume_spec  # pylint: disable=wrong-import-position

README_THRESHOLDS = [0.025, 0.05, 0.075, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
DEFAULT_VOLUME = 'third_party/neuroproof_examples/training_sample2/groundtruth.h5:stack'


def naive_summed_volume_table(values):
  """Integral table built the obvious way: three cumsums and a zero pad."""
  table = values.astype(np.int32).cumsum(axis=0).cumsum(axis=1).cumsum(axis=2)
  return np.pad(table, [[1, 0], [1, 0], [1, 0]], mode='constant')


def naive_partitions(seg, thresholds, lom_radius_xyz, min_size):
  """One full-volume integral table and threshold pass per label, as upstream's loop does."""
  seg = segmentation.clear_dust(seg, min_size=min_size)
  radius_zyx = np.array(lom_radius_xyz)[::-1]
  diam = 2 * radius_zyx + 1
  valid = tuple(slice(r, s - r) for r, s in zip(radius_zyx, seg.shape))
  output = np.zeros(seg[valid].shape, dtype=np.uint8)
  box_volume = np.prod(diam)
  for label in np.unique(seg):
    if label == 0:
      continue
    object_mask = seg == label
    table = naive_summed_volume_table(object_mask)
    fraction = partitions.box_sums_valid(table, diam) / box_volume
    object_mask = object_mask[valid]
    for i, threshold in enumerate(thresholds):
      output[object_mask & (fraction < threshold) & (output == 0)] = i + 1
    output[object_mask & (fraction >= thresholds[-1]) & (output == 0)] = len(thresholds) + 1
  return output


def _timed(fn, *args):
  """Result and wall time of fn(*args)."""
  start = time.perf_counter()
  result = fn(*args)
  return result, time.perf_counter() - start


def _peak_traced(fn, *args):
  """Peak bytes of Python/numpy allocations during fn(*args) (a separate, untimed run)."""
  tracemalloc.start()
  fn(*args)
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  return peak


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--volume', default=DEFAULT_VOLUME)
  parser.add_argument('--skip_naive', action='store_true')
  args = parser.parse_args()

  dataset = volume_spec.open_volume(args.volume)
  seg = dataset[...]
  dataset.file.close()
  radius = (24, 24, 24)
  print(f'volume {args.volume}: shape {seg.shape} {seg.dtype}, '
        f'{np.unique(seg).size} ids before dust removal')

  def run_ours(s):
    return partitions.compute_partitions(s, README_THRESHOLDS, radius, min_size=10000)[1]

  ours, ours_s = _timed(run_ours, seg.copy())
  ours_peak = _peak_traced(run_ours, seg.copy())
  print(f'ours : {ours_s:8.2f} s, peak traced memory {ours_peak / 2**20:7.1f} MiB '
        '(besides the input volume)')
  if not args.skip_naive:
    naive, naive_s = _timed(naive_partitions, seg.copy(), README_THRESHOLDS, radius, 10000)
    print(f'naive: {naive_s:8.2f} s (per-label full-volume integral tables)')
    identical = np.array_equal(naive, ours)
    print(f'identical maps: {identical}')
    print(f'speed-up: {naive_s / ours_s:.1f}x')
    if not identical:
      sys.exit(1)
  print(f'process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.1f} MiB')


if __name__ == '__main__':
  main()
