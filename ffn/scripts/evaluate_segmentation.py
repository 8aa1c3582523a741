"""Scores a segmentation against groundtruth: VI split/merge, adapted Rand error, worst offenders.

The segmentation is an inference result subvolume (--segmentation_dir and
--corner, loaded like `storage.load_segmentation`) or any HDF5 volume
(--segmentation path:dataset). Groundtruth 0 is ignored; --seg_zero says how
segmentation 0 counts. Prints a table and optionally writes JSON and a PNG overview.

  python evaluate_segmentation.py \
    --segmentation_dir results/fib25/training2 --corner 0,0,0 \
    --groundtruth third_party/neuroproof_examples/training_sample2/groundtruth.h5:stack \
    --output_json results/fib25/training2/evaluation.json
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags
from absl import logging
from google.protobuf import text_format

from ffn.utils import cli
from ffn.utils import atomic
from ffn.utils import bounding_box
from ffn.utils import bounding_box_pb2
from ffn.analysis import evaluation
from ffn.analysis import overview
from ffn.scripts import result_flags
from ffn.utils import volumes

FLAGS = flags.FLAGS

result_flags.define_result_flags(segmentation_help=' It must have the groundtruth\'s shape.')
flags.DEFINE_string('groundtruth', None, 'Groundtruth volume spec path:dataset (0 = unlabelled).')
flags.DEFINE_string('bounding_box', None, 'Region to score, a text BoundingBox proto in global '
                    'xyz voxels, e.g. "start { x:0 y:0 z:0 } size { x:100 y:100 z:50 }". '
                    'Default: the whole segmentation.')
flags.DEFINE_enum('seg_zero', 'singletons', evaluation.SEG_ZERO_MODES,
                  'Segmentation 0: "singletons" (each voxel its own segment, CREMI/SNEMI3D) '
                  'or "segment" (all of them one segment).')
flags.DEFINE_float('border_distance', 0.0, 'Leave out voxels within this distance of a '
                   'groundtruth boundary (0: none). In voxels, or in the units of --voxel_size.')
flags.DEFINE_list('voxel_size', None, 'xyz voxel size (e.g. 8,8,8 nm) for --border_distance.')
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
flags.DEFINE_boolean('overwrite', False, 'Replace existing output files.')


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


def main(argv):
  del argv
  if FLAGS.groundtruth is None:
    cli.fail('--groundtruth is required (path:dataset)')
  for path in (FLAGS.output_json, FLAGS.overview_png):
    if path and os.path.exists(path) and not FLAGS.overwrite:
      cli.fail(f'{path} exists; pass --overwrite to replace it')

  if FLAGS.segmentation_dir is not None and not os.path.isdir(FLAGS.segmentation_dir):
    cli.fail(f'--segmentation_dir {FLAGS.segmentation_dir!r} is not a directory')
  source = result_flags.result_from_flags()
  box = _parse_box(FLAGS.bounding_box) if FLAGS.bounding_box else None
  border = None
  if FLAGS.border_distance > 0:
    voxel_size = None
    if FLAGS.voxel_size:
      try:
        voxel_size = tuple(float(v) for v in FLAGS.voxel_size)
      except ValueError:
        voxel_size = ()
      if len(voxel_size) != 3:
        cli.fail(f'--voxel_size must be three numbers x,y,z, got {FLAGS.voxel_size}')
    border = evaluation.BorderExclusion(FLAGS.border_distance, voxel_size, FLAGS.border_mode)

  try:
    result, seg, gt = evaluation.evaluate(
        source, FLAGS.groundtruth, box, seg_zero=FLAGS.seg_zero, border=border,
        num_offenders=FLAGS.num_offenders, min_overlap=FLAGS.min_overlap)
  except ValueError as e:  # EvaluationError, VolumeSpecError and missing results.
    cli.fail(str(e))

  print(evaluation.format_report(result))
  if FLAGS.output_json:
    atomic.atomic_write_text(FLAGS.output_json,
                             json.dumps(result.to_json_dict(), indent=2) + '\n')
    logging.info('wrote %s', FLAGS.output_json)
  if FLAGS.overview_png:
    _write_overview(result, seg, gt)


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
  app.run(main)


if __name__ == '__main__':
  run()
