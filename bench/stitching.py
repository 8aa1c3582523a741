#!/usr/bin/env python
"""What block borders cost: a stitched blockwise run against one single run and the groundtruth.

  python bench/stitching.py [--size 150] [--blocks 2,2,1] [--overlap 48]
                            [--work_dir /tmp/ffn_stitching_150] [--min_overlap_size 100]
                            [--min_overlap_fraction 0.5]

Segments the cube start (0,0,0), size `--size`^3 (xyz) of training_sample2 with
the fast sample config twice: as one subvolume (run_inference's library entry)
and as `--blocks` (x,y,z) overlapping subvolumes on `--num_workers` daisy
workers, stitched (run_blockwise_inference's). Both results are kept in
`--work_dir` and reused by later runs, so that other stitching settings only
stitch again. Prints, against the single run and against the groundtruth:
  * objects crossing a border between owned regions, how many of them the
    blocks cut before stitching and how many stay cut after (cut in two
    pieces of >= --min_voxels voxels each, --min_contact voxel pairs across);
  * false joins at a border: two reference objects in one stitched object
    that no single block fragment holds together (the first few are listed);
  * VI split/merge with segmentation 0 as one segment and as singletons, of the
    stitched volume, of the blocks before stitching (each owned region with its
    block's own ids; stitching only joins these, so the merge it adds is the
    difference) and, against the groundtruth, of the single run.
"""

from __future__ import annotations

import os
import pathlib
import sys

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

CONFIG = REPO_ROOT / 'configs' / 'inference_training_sample2_fast.pbtxt'
GROUNDTRUTH = 'third_party/neuroproof_examples/training_sample2/groundtruth.h5:stack'

FLAGS = flags.FLAGS
flags.DEFINE_integer('size', 150, 'Edge of the cube to segment (voxels, from 0,0,0); 250 is '
                     'the whole sample.')
flags.DEFINE_list('blocks', ['2', '2', '1'], 'Blocks along x,y,z.')
flags.DEFINE_integer('overlap', 48, 'Overlap of neighbouring subvolumes (voxels, split axes).')
flags.DEFINE_integer('num_workers', 2, 'daisy workers per task.')
flags.DEFINE_integer('min_overlap_size', 100, 'Stitching: voxels two objects must share.')
flags.DEFINE_float('min_overlap_fraction', 0.5,
                   "Stitching: share of the smaller object's overlap voxels they must share.")
flags.DEFINE_integer('match_margin', 0, 'Stitching: match on the voxels within this many of the '
                     'owned border only (0: the whole overlap).')
flags.DEFINE_bool('owner_decides', False, 'Stitching: one-to-many matches kept only where the '
                  "object's own block owns the shared voxels (beyond its largest partner).")
flags.DEFINE_integer('min_voxels', 100, 'Counting: voxels a piece must share with a reference '
                     'object to count in a cut or a join.')
flags.DEFINE_integer('min_contact', 10, 'Counting: voxel pairs across a border for an object '
                     'to cross it.')
flags.DEFINE_integer('show', 8, 'False joins listed against each reference.')
flags.DEFINE_string('work_dir', None, 'Where both runs are kept and reused (default: '
                    '/tmp/ffn_stitching_<size>).')


def _read(spec: str, box: bounding_box.BoundingBox) -> np.ndarray:
  """The zyx contents of an xyz box of a volume."""
  with volumes.open_volume(spec) as volume:
    return volume.read(box)


def _request(out_dir: pathlib.Path):
  """The fast config writing into `out_dir`."""
  request = run_request.parse_request(CONFIG.read_text())
  request.segmentation_output_dir = str(out_dir)
  return request


def _single_run(region: bounding_box.BoundingBox, out_dir: pathlib.Path) -> np.ndarray:
  """The single run's labels (segmented now unless `out_dir` holds them)."""
  if results.get_existing_subvolume_path(str(out_dir), (0, 0, 0)) is None:
    print(f'single run into {out_dir} ...', flush=True)
    run_request.run_inference(_request(out_dir), [region])
  else:
    print(f'single run: reused from {out_dir}', flush=True)
  return results.load_segmentation(str(out_dir), (0, 0, 0), split_cc=False)[0]


def _stitched(grid: grid_lib.BlockGrid, work_dir: pathlib.Path
              ) -> tuple[np.ndarray, np.ndarray, stitching.StitchSettings]:
  """(stitched labels, owned fragments, settings): blocks segmented unless present, stitched."""
  blocks_dir = work_dir / 'blocks'
  rule = (f'{FLAGS.min_overlap_size}_{FLAGS.min_overlap_fraction:g}_{FLAGS.match_margin}'
          f'{"_owner" if FLAGS.owner_decides else ""}')
  settings = stitching.StitchSettings(str(blocks_dir), grid,
                                      f'{work_dir}/stitched_{rule}.h5:seg',
                                      FLAGS.min_overlap_size,
                                      min_overlap_fraction=FLAGS.min_overlap_fraction,
                                      match_margin=FLAGS.match_margin,
                                      owner_decides=FLAGS.owner_decides)
  segment = bool(stitching.missing_results(settings))
  print(f'blockwise: {"segmenting" if segment else "reusing"} the blocks in {blocks_dir}, '
        'stitching ...', flush=True)
  request_text = str(_request(blocks_dir)) if segment else None
  scheduling.run(plan_lib.BlockwisePlan(settings, request_text), FLAGS.num_workers,
                 progress=False)
  region = bounding_box.BoundingBox.from_zyx(grid.start, grid.size)
  stitched = _read(settings.output_volume, region)
  fragments = border_errors.owned_fragments(grid, lambda i: stitching.load_block(settings, i))
  return stitched, fragments, settings


def _block_mergers(grid, settings, reference, joins) -> dict:
  """{(ref a, ref b): blocks whose own object holds both of a false join's objects, anywhere}."""
  wanted = {join.reference_ids for join in joins}
  found = {}
  for index in grid.indices():
    labels = stitching.load_block(settings, index)
    box = tuple(slice(c - s, c - s + n) for c, s, n in
                zip(grid.corner(index), grid.start, grid.block_size(index)))
    ids_b, ids_r, counts = border_errors.overlap_table(labels, reference[box])
    held = {}
    for b, r, n in zip(ids_b.tolist(), ids_r.tolist(), counts.tolist()):
      if n >= FLAGS.min_voxels:
        held.setdefault(b, set()).add(r)
    for refs in held.values():
      for pair in wanted:
        if set(pair) <= refs:
          found.setdefault(pair, set()).add(grid.ordinal(index))
  return {pair: sorted(blocks) for pair, blocks in found.items()}


def _vi(segmentation: np.ndarray, reference: np.ndarray) -> dict[str, tuple[float, float]]:
  """{seg 0 mode: (VI split, VI merge)} of a segmentation against a reference."""
  scores = {}
  for mode in ('segment', 'singletons'):
    result = evaluation.evaluate_arrays(segmentation, reference, seg_zero=mode,
                                        num_offenders=0)
    scores[mode] = (result.vi_split, result.vi_merge)
  return scores


def _count(reference, volume, fragments, grid) -> border_errors.BorderErrors:
  return border_errors.find_border_errors(reference, volume, fragments, grid,
                                          FLAGS.min_voxels, FLAGS.min_contact)


def _report(name: str, reference: np.ndarray, single, stitched, fragments, grid,
            settings) -> None:
  """Border counts and VI of the blockwise result (and the single run) against `reference`."""
  print(f'\n== against {name} ({len(np.unique(reference[reference != 0]))} objects)')
  before = _count(reference, fragments, fragments, grid)
  after = _count(reference, stitched, fragments, grid)
  line = (f'objects crossing a border: {after.crossing_objects}; cut by the blocks before '
          f'stitching: {before.cut_objects}; cut after stitching: {after.cut_objects}')
  if single is not None:
    line += f' (cut there by the single run: {_count(reference, single, single, grid).cut_objects})'
  print(line)
  spread = sum(join.spread for join in after.false_joins)
  print(f'false joins at a border: {len(after.false_joins)} pairs of {name} objects in '
        f'{after.joined_objects} stitched objects ({spread} of them a merge one block made in its '
        'own region, spread to other blocks\' pieces by stitching)')
  crossed = [join for join in after.false_joins if not join.spread]
  mergers = _block_mergers(grid, settings, reference, crossed)
  print(f'  of the other {len(crossed)}, {len(mergers)} held together by one block\'s object '
        'outside its owned region (its merge carried over by matching), the rest joined by '
        'matching alone')
  for join in sorted(after.false_joins, key=lambda j: -min(j.voxels))[:FLAGS.show]:
    blocks = mergers.get(join.reference_ids)
    print(f'  stitched {join.stitched_id}: {name} {join.reference_ids[0]} '
          f'({join.voxels[0]} voxels) + {join.reference_ids[1]} ({join.voxels[1]} voxels); '
          + ('one block merged them in its own region' if join.spread else
             f'one object of block(s) {blocks} holds both' if blocks else
             'no block object holds both'))
  if single is not None:
    also = sum(1 for join in after.false_joins
               if _together(single, reference, join.reference_ids))
    print(f'  of them {also} held together by the single run as well')
  stitched_vi, blocks_vi = _vi(stitched, reference), _vi(fragments, reference)
  single_vi = _vi(single, reference) if single is not None else None
  for mode, label in (('segment', 'seg 0 as one segment'), ('singletons', 'seg 0 as singletons')):
    split, merge = stitched_vi[mode]
    b_split, b_merge = blocks_vi[mode]
    line = (f'VI ({label}): stitched split {split:.4f} merge {merge:.4f}; blocks before '
            f'stitching split {b_split:.4f} merge {b_merge:.4f} (stitching adds merge '
            f'{merge - b_merge:+.4f})')
    if single_vi is not None:
      s_split, s_merge = single_vi[mode]
      line += (f'; single run split {s_split:.4f} merge {s_merge:.4f} (stitched - single: split '
               f'{split - s_split:+.4f} merge {merge - s_merge:+.4f})')
    print(line)


def _together(segmentation: np.ndarray, reference: np.ndarray, ids) -> bool:
  """Whether one object of `segmentation` shares >= --min_voxels with each reference object."""
  holders = []
  for ref_id in ids:
    values, counts = np.unique(segmentation[reference == ref_id], return_counts=True)
    holders.append({int(v) for v, n in zip(values, counts) if v != 0 and n >= FLAGS.min_voxels})
  return bool(set.intersection(*holders))


def main(argv):
  del argv
  os.chdir(REPO_ROOT)
  size, overlap = FLAGS.size, FLAGS.overlap
  counts = [int(n) for n in FLAGS.blocks]
  if len(counts) != 3 or min(counts) < 1:
    sys.exit(f'stitching.py: error: --blocks {",".join(FLAGS.blocks)}: expected three '
             'positive counts (x,y,z)')
  sub = [size if n == 1 else -(-(size + (n - 1) * overlap) // n) for n in counts]
  region = bounding_box.BoundingBox(start=(0, 0, 0), size=(size,) * 3)
  grid = grid_lib.BlockGrid.from_xyz(region, sub, [0 if n == 1 else overlap for n in counts])
  work_dir = pathlib.Path(FLAGS.work_dir or f'/tmp/ffn_stitching_{size}').resolve()
  owned = sorted({tuple(int(n) for n in grid.owned_box(i).size) for i in grid.indices()})
  print(f'config: {CONFIG.relative_to(REPO_ROOT)}; region {size}^3 as {tuple(counts)} (xyz) '
        f'blocks of {tuple(sub)} (xyz), overlap {overlap}; owned regions (xyz): {owned}; '
        f'border planes (zyx axis, position): {border_errors.border_planes(grid)}')
  print(f'stitching rule: >= {FLAGS.min_overlap_size} shared voxels and >= '
        f'{FLAGS.min_overlap_fraction:g} of the smaller object in the overlap'
        + (f' (within {FLAGS.match_margin} voxels of the owned border)' if FLAGS.match_margin
           else '') + ('; one-to-many matches settled by the owner' if FLAGS.owner_decides
                       else '') + '; counting: pieces '
        f'>= {FLAGS.min_voxels} voxels, crossings >= {FLAGS.min_contact} voxel pairs', flush=True)
  single = _single_run(region, work_dir / 'single')
  stitched, fragments, settings = _stitched(grid, work_dir)
  print(f'objects: single run {len(np.unique(single[single != 0]))}, blocks '
        f'{len(np.unique(fragments[fragments != 0]))} fragments in their owned regions, '
        f'stitched {len(np.unique(stitched[stitched != 0]))}')
  _report('the single run', single, None, stitched, fragments, grid, settings)
  _report('the groundtruth', _read(GROUNDTRUTH, region), single, stitched, fragments, grid,
          settings)


if __name__ == '__main__':
  app.run(main)
