#!/usr/bin/env python
"""Blockwise inference against one single run on the bundled sample: time, cuts and VI.

  python bench/blockwise.py [--size 250] [--overlap 48] [--num_workers 2]

Segments the cube start (0,0,0), size `--size`^3 (xyz) of training_sample2 twice
with the bundled checkpoint (the fast config when there is one, else the fp32
sample config): once as one subvolume, in this process, and once as 2 x 2 x 2
overlapping subvolumes on `--num_workers` daisy workers, stitched into one
volume. Prints:
  * the grid (subvolume size, overlap, owned regions);
  * wall time of both runs (the blockwise one includes worker start-up, model
    loading per worker and stitching);
  * objects of the single run that cross a border between owned regions, and
    how many of those crossings are cut (two ids on the two sides) before
    stitching (each block's own ids) and after;
  * VI split/merge against the groundtruth of the stitched volume beside the
    single run's, with segmentation 0 excluded from scoring and with
    segmentation 0 as one segment.
"""

from __future__ import annotations

import collections
import os
import pathlib
import sys
import tempfile
import time
from typing import Optional

from absl import app
from absl import flags
import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
from ffn.analysis import evaluation
from ffn.blockwise import border_errors
from ffn.blockwise import grid as grid_lib
from ffn.blockwise import plan as plan_lib
from ffn.blockwise import scheduling
from ffn.blockwise import stitching
from ffn.inference.io import results
from ffn.inference.request import run_request
from ffn.utils import bounding_box
from ffn.utils import volumes
# pylint: enable=g-import-not-at-top,wrong-import-position

FAST_CONFIG = REPO_ROOT / 'configs' / 'inference_training_sample2_fast.pbtxt'
FP32_CONFIG = REPO_ROOT / 'configs' / 'inference_training_sample2.pbtxt'
GROUNDTRUTH = ('third_party/neuroproof_examples/training_sample2/groundtruth.h5:stack')

FLAGS = flags.FLAGS
flags.DEFINE_integer('size', 250, 'Edge of the cube to segment (voxels, from 0,0,0).')
flags.DEFINE_integer('overlap', 48, 'Overlap of neighbouring subvolumes (voxels, every axis).')
flags.DEFINE_integer('num_workers', 2, 'daisy workers per task.')
flags.DEFINE_integer('min_overlap_size', 100, 'Voxels two objects must share to be joined.')
flags.DEFINE_float('min_overlap_fraction', 0.5,
                   "Share of the smaller object's overlap voxels two objects must share.")
flags.DEFINE_string('config', None, 'InferenceRequest text file (default: the fast sample '
                    'config if it exists, else the fp32 one).')
flags.DEFINE_string('output_dir', None, 'Where to keep the results, a new or empty directory '
                    '(default: a temporary one).')


def _read(spec: str, box: Optional[bounding_box.BoundingBox] = None) -> np.ndarray:
  """The zyx contents of a volume (or of an xyz box of it)."""
  with volumes.open_volume(spec) as volume:
    return volume[...] if box is None else volume.read(box)


def _timed_single_run(request, size: int, out_dir: str) -> tuple[np.ndarray, float]:
  """(labels, seconds) of the cube segmented as one subvolume."""
  request.segmentation_output_dir = out_dir
  box = bounding_box.BoundingBox(start=(0, 0, 0), size=(size,) * 3)
  start = time.perf_counter()
  run_request.run_inference(request, [box])
  seconds = time.perf_counter() - start
  return results.load_segmentation(out_dir, (0, 0, 0), split_cc=False)[0], seconds


def _cut_crossings(reference: np.ndarray, volume: np.ndarray, planes) -> tuple[int, int]:
  """(object-border crossings of `reference`, how many of them `volume` cuts).

  An object of `reference` crosses a border where it holds both voxels next to
  it; `volume` cuts that crossing when the label pair seen most often there
  differs across the border.
  """
  crossings = cut = 0
  for axis, position in planes:
    before = np.take(reference, position - 1, axis=axis)
    after = np.take(reference, position, axis=axis)
    v_before = np.take(volume, position - 1, axis=axis)
    v_after = np.take(volume, position, axis=axis)
    same = (before == after) & (before != 0)
    pairs = collections.defaultdict(collections.Counter)
    for r, a, b in zip(before[same], v_before[same], v_after[same]):
      pairs[int(r)][(int(a), int(b))] += 1
    for counter in pairs.values():
      crossings += 1
      (a, b), _ = counter.most_common(1)[0]
      cut += a != b
  return crossings, cut


def _vi(segmentation: np.ndarray, groundtruth: np.ndarray) -> dict[str, tuple[float, float]]:
  """(VI split, VI merge) with seg 0 excluded from scoring, and with seg 0 as one segment."""
  excluded = np.where(segmentation == 0, 0, groundtruth)
  scores = {}
  for name, gt, mode in (('seg 0 excluded', excluded, 'segment'),
                         ('seg 0 as one segment', groundtruth, 'segment')):
    result = evaluation.evaluate_arrays(segmentation, gt, seg_zero=mode, num_offenders=0)
    scores[name] = (result.vi_split, result.vi_merge)
  return scores


def main(argv):
  del argv
  os.chdir(REPO_ROOT)
  config = pathlib.Path(FLAGS.config) if FLAGS.config else (
      FAST_CONFIG if FAST_CONFIG.exists() else FP32_CONFIG)
  size, overlap = FLAGS.size, FLAGS.overlap
  sub = -(-(size + overlap) // 2)
  region = bounding_box.BoundingBox(start=(0, 0, 0), size=(size,) * 3)
  grid = grid_lib.BlockGrid.from_xyz(region, (sub,) * 3, (overlap,) * 3)
  if FLAGS.output_dir and os.path.exists(FLAGS.output_dir) and os.listdir(FLAGS.output_dir):
    # Results already there would be kept, and the times would measure nothing.
    sys.exit(f'blockwise.py: error: --output_dir {FLAGS.output_dir} is not empty')
  with tempfile.TemporaryDirectory() as tmp_dir:
    out_dir = pathlib.Path(FLAGS.output_dir or tmp_dir).resolve()
    text = config.read_text()
    owned = sorted({tuple(int(n) for n in grid.owned_box(i).size) for i in grid.indices()})
    print(f'config: {config.relative_to(REPO_ROOT)}; region {size}^3 as {grid.shape} blocks of '
          f'{sub}^3 with overlap {overlap}; owned regions (xyz): {owned}', flush=True)

    single, single_seconds = _timed_single_run(run_request.parse_request(text), size,
                                               str(out_dir / 'single'))

    request = run_request.parse_request(text)
    request.segmentation_output_dir = str(out_dir / 'blockwise')
    output = f'{out_dir}/stitched.h5:seg'
    settings = stitching.StitchSettings(request.segmentation_output_dir, grid, output,
                                        FLAGS.min_overlap_size,
                                        min_overlap_fraction=FLAGS.min_overlap_fraction)
    plan = plan_lib.BlockwisePlan(settings, str(request))
    start = time.perf_counter()
    scheduling.run(plan, FLAGS.num_workers)
    blockwise_seconds = time.perf_counter() - start
    stitched = _read(output)
    unstitched = border_errors.owned_fragments(
        grid, lambda index: stitching.load_block(settings, index))

  groundtruth = _read(GROUNDTRUTH, region)
  print(f'wall time: single run {single_seconds:.1f} s; blockwise ({FLAGS.num_workers} '
        f'workers, {len(grid)} blocks, stitched) {blockwise_seconds:.1f} s')
  planes = border_errors.border_planes(grid)
  crossings, cut_before = _cut_crossings(single, unstitched, planes)
  _, cut_after = _cut_crossings(single, stitched, planes)
  print(f'objects of the single run crossing block borders: {crossings} crossings; cut before '
        f'stitching: {cut_before}, after: {cut_after}')
  print(f'objects: single run {len(np.unique(single)) - 1}, stitched '
        f'{len(np.unique(stitched)) - 1}')
  single_vi, stitched_vi = _vi(single, groundtruth), _vi(stitched, groundtruth)
  for name in single_vi:
    (s_split, s_merge), (b_split, b_merge) = single_vi[name], stitched_vi[name]
    print(f'VI ({name}): single run {s_split + s_merge:.4f} (split {s_split:.4f}, merge '
          f'{s_merge:.4f}); stitched {b_split + b_merge:.4f} (split {b_split:.4f}, merge '
          f'{b_merge:.4f}); difference {b_split + b_merge - s_split - s_merge:+.4f} bits')


if __name__ == '__main__':
  app.run(main)
