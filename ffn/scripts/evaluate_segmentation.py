"""Scores a segmentation against groundtruth: VI split/merge, adapted Rand error, worst offenders,
and expected run length (ERL) with merges and splits on groundtruth skeletons.

The segmentation is an inference result subvolume (--segmentation_dir and
--corner, loaded like `storage.load_segmentation`) or any HDF5 volume
(--segmentation path:dataset). Groundtruth 0 and the --ignore_label values are
not scored; --seg_zero says how segmentation 0 counts (which convention each
mode follows: ffn/analysis/evaluation.py). The groundtruth skeletons are those of the groundtruth
labels (kimimaro) or SWC files (--skeletons). Prints a table and optionally
writes JSON and a PNG overview.

  python evaluate_segmentation.py \\
    --segmentation_dir results/fib25/training2 --corner 0,0,0 \\
    --groundtruth third_party/neuroproof_examples/training_sample2/groundtruth.h5:stack \\
    --output_json results/fib25/training2/evaluation.json
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Optional

from absl import flags
from absl import logging
from google.protobuf import text_format
import numpy as np

from ffn.analysis import evaluation
from ffn.analysis import overview
from ffn.analysis import skeletons
from ffn.inference.policies import seed_points
from ffn.scripts import result_flags
from ffn.utils import atomic
from ffn.utils import bounding_box
from ffn.utils import bounding_box_pb2
from ffn.utils import checks
from ffn.utils import cli
from ffn.utils import errors
from ffn.utils import volumes

FLAGS = flags.FLAGS

result_flags.define_result_flags(segmentation_help=' It must have the groundtruth\'s shape.')
flags.DEFINE_string('groundtruth', None, 'Groundtruth volume spec path:dataset (0 = unlabelled).')
flags.DEFINE_string('bounding_box', None, 'Region to score, a text BoundingBox proto in global '
                    'xyz voxels, e.g. "start { x:0 y:0 z:0 } size { x:100 y:100 z:50 }". '
                    'Default: the whole segmentation.')
flags.DEFINE_enum('seg_zero', 'singletons', evaluation.SEG_ZERO_MODES,
                  'How segmentation 0 counts: "singletons" (each voxel its own segment, in VI '
                  'and Rand; this project\'s convention), "segment" (all of them one segment, '
                  'in VI and Rand) or "cremi" (CREMI\'s published pair, as the cremi package '
                  'computes it: VI with 0 as one segment, its adapted Rand error).')
flags.DEFINE_list('ignore_label', [], 'Groundtruth labels to leave out of every score, like '
                  'groundtruth 0 (e.g. 18446744073709551615, CREMI\'s "no label").')
flags.DEFINE_float('border_distance', 0.0, 'Leave out voxels within this distance of a '
                   'groundtruth boundary (0: none). In voxels, or in the units of --voxel_size.')
flags.DEFINE_list('voxel_size', None, 'xyz voxel size in nm (e.g. 8,8,8) for --border_distance '
                  'and the skeleton metrics; without it, --border_distance is in voxels and the '
                  'skeleton metrics take 10,10,10 (the bundled sample\'s).')
flags.DEFINE_enum('border_mode', '2d', evaluation.BORDER_MODES,
                  'Measure border distance within xy slices (CREMI) or in 3-D.')
flags.DEFINE_integer('num_offenders', 10, 'How many worst mergers and splits to list.')
flags.DEFINE_integer('min_overlap', 100, 'Overlaps smaller than this (voxels) do not count '
                     'as a merge or split in the offender lists.')
flags.DEFINE_string('output_json', None, 'Write the results here as JSON.')
flags.DEFINE_string('overview_png', None, 'Write a PNG of the segmentation and groundtruth '
                    'through --overview_center here.')
flags.DEFINE_string('image', None, 'Image volume spec for the overview background.')
flags.DEFINE_list('overview_center', None, 'Global xyz point the overview planes go through; '
                  'default: the region centre.')
flags.DEFINE_string('points', None, 'A file of x,y,z lines (global voxels, as PolicyPoints reads '
                    'them): score only the groundtruth bodies under these points, and the '
                    'segments that overlap them (a targeted run); ERL on those bodies alone.')
flags.DEFINE_boolean('overwrite', False, 'Replace existing output files.')
flags.DEFINE_boolean('erl', True, 'Score the segmentation on groundtruth skeletons: expected run '
                     'length (ERL), merges and splits, in the table and under "erl" in '
                     '--output_json. --noerl skips it (skeletonizing a large groundtruth takes '
                     'a while; --write_skeletons and --skeletons skeletonize it once).')
flags.DEFINE_list('skeletons', None, 'SWC files, or directories of them, holding the groundtruth '
                  'skeletons in global xyz nm (voxel (0,0,0) at 0). Default: skeletonize the '
                  'groundtruth labels of the scored region with kimimaro.')
flags.DEFINE_enum('swc_grouping', 'file', skeletons.SWC_GROUPINGS, 'With --skeletons: each SWC '
                  'file is one groundtruth neuron ("file"), or each tree in a file is ("tree").')
flags.DEFINE_float('kimimaro_scale', 1.5, 'kimimaro (TEASAR): a traced path clears a ball of '
                   'radius scale * distance to the boundary + const around it.')
flags.DEFINE_float('kimimaro_const', 300.0, 'kimimaro (TEASAR): the const of --kimimaro_scale, '
                   'in nm; branches shorter than about this are not traced.')
flags.DEFINE_integer('kimimaro_dust_threshold', 1000, 'Groundtruth pieces of at most this many '
                     'voxels get no skeleton.')
flags.DEFINE_integer('kimimaro_parallel', 1, 'Processes for kimimaro (<= 0: one per core).')
flags.DEFINE_string('write_skeletons', None, 'Write the groundtruth skeletons into this directory, '
                    'one <label>.swc per groundtruth object, for later runs with --skeletons.')

cli.check_flag_ranges({'border_distance': checks.NON_NEGATIVE,
                       'num_offenders': checks.NON_NEGATIVE_INT,
                       'min_overlap': checks.NON_NEGATIVE_INT,
                       'kimimaro_scale': checks.POSITIVE, 'kimimaro_const': checks.NON_NEGATIVE,
                       'kimimaro_dust_threshold': checks.NON_NEGATIVE_INT,
                       'kimimaro_parallel': checks.Range(integer=True)})

_KIMIMARO_FLAGS = ('kimimaro_scale', 'kimimaro_const', 'kimimaro_dust_threshold',
                   'kimimaro_parallel', 'write_skeletons')
_DEFAULT_VOXEL_SIZE = (10.0, 10.0, 10.0)


def _parse_box(text: str) -> bounding_box.BoundingBox:
  """A BoundingBox from the text proto of --bounding_box."""
  try:
    proto = text_format.Parse(text, bounding_box_pb2.BoundingBox())
  except text_format.ParseError as e:
    cli.fail(f'--bounding_box {text!r} is not a text BoundingBox proto: {e}')
  box = bounding_box.BoundingBox(proto)
  if box.is_empty() or (box.start < 0).any():
    cli.fail(f'--bounding_box {text!r} is empty or starts below 0')
  return box


@cli.guard
def main(argv):
  del argv
  if FLAGS.groundtruth is None:
    cli.fail('--groundtruth is required (path:dataset)')
  for path in (FLAGS.output_json, FLAGS.overview_png):
    if path and os.path.exists(path) and not FLAGS.overwrite:
      cli.fail(f'{path} exists; pass --overwrite to replace it')
    if path:
      atomic.check_output(path)
      volumes.check_output_not_input(path, [FLAGS.groundtruth, FLAGS.segmentation, FLAGS.image,
                                           FLAGS.points])
  if FLAGS.image:
    # Opened now so that a bad --image fails before the (long) evaluation, not after.
    volumes.open_volume(FLAGS.image).close()
  if FLAGS.overview_center:
    cli.parse_triple(FLAGS.overview_center, 'overview_center')

  if FLAGS.segmentation_dir is not None and not os.path.isdir(FLAGS.segmentation_dir):
    cli.fail(f'--segmentation_dir {FLAGS.segmentation_dir!r} is not a directory')
  source = result_flags.result_from_flags()
  box = _parse_box(FLAGS.bounding_box) if FLAGS.bounding_box else None
  voxel_size = _parse_voxel_size()
  border = None
  if FLAGS.border_distance > 0:
    border = evaluation.BorderExclusion(FLAGS.border_distance, voxel_size, FLAGS.border_mode)
  # Skeleton options are checked (and SWC files read) before the slow work.
  swc, kimimaro_params = _skeleton_inputs()
  points = None
  if FLAGS.points:
    try:
      points = seed_points.parse_points(points_file=FLAGS.points)[:, :3]
    except errors.FFNError as e:
      cli.fail(f'--points: {e}')

  ignore_labels = _parse_ignore_labels()

  try:
    result, seg, gt = evaluation.evaluate(
        source, FLAGS.groundtruth, box, points_xyz=points, seg_zero=FLAGS.seg_zero,
        ignore_labels=ignore_labels, border=border, num_offenders=FLAGS.num_offenders, min_overlap=FLAGS.min_overlap)
  except errors.FFNError as e:  # EvaluationError, VolumeSpecError and missing results.
    cli.fail(str(e))

  print(evaluation.format_report(result))
  data = result.to_json_dict()
  if FLAGS.erl:
    data['erl'] = _skeleton_metrics(seg, gt, result.box['start_xyz'],
                                    voxel_size or _DEFAULT_VOXEL_SIZE, swc, kimimaro_params)
  if FLAGS.output_json:
    atomic.atomic_write_text(FLAGS.output_json, json.dumps(data, indent=2) + '\n')
    logging.info('wrote %s', FLAGS.output_json)
  if FLAGS.overview_png:
    _write_overview(result, seg, gt)


def _parse_ignore_labels() -> list[int]:
  """--ignore_label as integers from 0 to 2^64-1."""
  labels = []
  for text in FLAGS.ignore_label:
    try:
      label = int(text)
    except ValueError:
      label = -1
    if not 0 <= label < 1 << 64:
      cli.fail(f'--ignore_label must be groundtruth labels from 0 to 2^64-1, got {text!r}')
    labels.append(label)
  return labels


def _parse_voxel_size() -> Optional[tuple[float, float, float]]:
  """--voxel_size as three positive floats, or None when not given."""
  if not FLAGS.voxel_size:
    return None
  try:
    return skeletons.check_voxel_size(FLAGS.voxel_size)
  except skeletons.SkeletonError:
    cli.fail(f'--voxel_size must be three positive numbers x,y,z, '
             f'got {",".join(FLAGS.voxel_size)!r}')


def _skeleton_inputs() -> tuple[Optional[skeletons.Skeletons], skeletons.KimimaroParams]:
  """(skeletons read from --skeletons or None, kimimaro settings); fails on unusable flags."""
  given = [n for n in ('skeletons', 'swc_grouping', *_KIMIMARO_FLAGS) if FLAGS[n].present]
  if not FLAGS.erl and given:
    cli.fail(f'--{given[0]} has no effect with --noerl')
  params = skeletons.KimimaroParams(
      scale=FLAGS.kimimaro_scale, const=FLAGS.kimimaro_const,
      dust_threshold=FLAGS.kimimaro_dust_threshold, parallel=FLAGS.kimimaro_parallel)
  if FLAGS.skeletons:
    unused = [n for n in _KIMIMARO_FLAGS if FLAGS[n].present]
    if unused:
      cli.fail(f'--{unused[0]} applies to skeletons of the groundtruth labels, not to '
               f'--skeletons')
  elif FLAGS['swc_grouping'].present:
    cli.fail('--swc_grouping applies to --skeletons only')
  out = FLAGS.write_skeletons
  if out and os.path.exists(out) and not FLAGS.overwrite:
    cli.fail(f'{out} exists; pass --overwrite to replace it')
  try:
    if out:
      skeletons.check_swc_directory(out)
    params.check()
    swc = skeletons.read_swc(FLAGS.skeletons, FLAGS.swc_grouping) if FLAGS.skeletons else None
  except skeletons.SkeletonError as e:
    cli.fail(str(e))
  if swc is not None:
    logging.info('read %d skeletons (%d nodes) from %s', len(np.unique(swc.object_ids)),
                 swc.num_nodes, ','.join(FLAGS.skeletons))
  return swc, params


def _skeleton_metrics(seg: np.ndarray, gt: np.ndarray, start_xyz: list[int],
                      voxel_size: tuple[float, float, float],
                      swc: Optional[skeletons.Skeletons],
                      params: skeletons.KimimaroParams) -> dict[str, Any]:
  """Prints the skeleton metrics table and returns the "erl" entry of the JSON."""
  if not FLAGS.voxel_size:
    logging.info('no --voxel_size: skeleton lengths assume %s nm voxels', voxel_size)
  start = time.time()
  if swc is not None:
    skeleton_graph = swc
    source = f'SWC {",".join(FLAGS.skeletons)} (one skeleton per {FLAGS.swc_grouping})'
  else:
    skeleton_graph = skeletons.skeletonize_labels(gt, voxel_size, params, start_xyz)
    source = (f'groundtruth labels, kimimaro scale {params.scale:g} const {params.const:g} nm, '
              f'dust {params.dust_threshold} voxels')
    if FLAGS.write_skeletons:
      try:
        paths = skeletons.write_swc_files(FLAGS.write_skeletons, skeleton_graph)
      except (skeletons.SkeletonError, OSError) as e:
        cli.fail(f'cannot write --write_skeletons {FLAGS.write_skeletons}: {e}')
      logging.info('wrote %d SWC files to %s', len(paths), FLAGS.write_skeletons)
  metrics = skeletons.evaluate_skeletons(skeleton_graph, seg, voxel_size, start_xyz)
  logging.info('skeleton metrics took %.1f s', time.time() - start)
  print()
  print(skeletons.format_report(metrics, f'{source}; voxel size {voxel_size} nm (xyz)',
                                FLAGS.num_offenders))
  entry = metrics.to_json_dict()
  entry['skeletons'] = source
  entry['voxel_size_xyz_nm'] = list(voxel_size)
  entry['kimimaro'] = None if swc is not None else dataclasses.asdict(params)
  return entry


def _write_overview(result: evaluation.EvaluationResult, seg, gt) -> None:
  """Writes --overview_png: segmentation (left) and groundtruth (right) over the image."""
  start_xyz = result.box['start_xyz']
  size_xyz = result.box['size_xyz']
  center_zyx = None
  if FLAGS.overview_center:
    center_xyz = cli.parse_triple(FLAGS.overview_center, 'overview_center')
    local = [c - s for c, s in zip(center_xyz, start_xyz)]
    if any(not 0 <= l < n for l, n in zip(local, size_xyz)):
      cli.fail(f'--overview_center {center_xyz} is outside the scored region '
            f'start={start_xyz} size={size_xyz} (xyz)')
    center_zyx = local[::-1]
  image = None
  if FLAGS.image:
    region = bounding_box.BoundingBox(start=start_xyz, size=size_xyz)
    with volumes.open_volume(FLAGS.image) as volume:
      volume_box = bounding_box.BoundingBox.from_zyx((0, 0, 0), volume.shape[:3])
      if volume.ndim != 3 or not volume_box.contains_box(region):
        cli.fail(f'image {FLAGS.image} of shape {volume.shape} (zyx) does not cover the '
                 f'scored region start={start_xyz} size={size_xyz} (xyz)')
      image = volume.read(region)
  # Small regions are enlarged to about 400 pixels per panel, so that they can be seen.
  zoom = max(1, 400 // (size_xyz[0] + size_xyz[2] + 1))
  overview.write_overview_png(FLAGS.overview_png, image, [seg, gt], center_zyx=center_zyx,
                              titles=['segmentation', 'groundtruth'], origin_xyz=start_xyz,
                              palette=True, zoom=zoom)
  logging.info('wrote %s (left: segmentation, right: groundtruth)', FLAGS.overview_png)


def run() -> None:
  """The command-line entry point."""
  cli.run(main)


if __name__ == '__main__':
  run()
