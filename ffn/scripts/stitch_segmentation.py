"""Stitches existing subvolume results of a blockwise grid into one global segmentation.

The same stitching step run_blockwise_inference.py ends with, on results that
exist already (e.g. made by several run_inference.py calls on the grid's boxes).
Results of a PolicyPoints run exist only for the blocks holding a point: give
its points file (--points_file) to stitch just those.

  python stitch_segmentation.py --segmentation_dir results/fib25/blockwise \\
      --bounding_box 'start { x:0 y:0 z:0 } size { x:250 y:250 z:250 }' \\
      --subvolume_size 150,150,150 --overlap 50,50,50 \\
      --output_volume zarr:///abs/path/stitched.zarr
"""

from __future__ import annotations

import os

from absl import flags

from ffn.inference.policies import seed_points
from ffn.inference.request import run_request
from ffn.scripts import blockwise_flags
from ffn.utils import axes
from ffn.utils import cli
from ffn.utils import errors

FLAGS = flags.FLAGS

flags.DEFINE_string('segmentation_dir', None, 'Directory holding the subvolume results.')
flags.DEFINE_string('points_file', None,
                    'Points file of a PolicyPoints run (x,y,z[,id] lines, global voxels): only '
                    'the blocks holding a point are stitched, as that run segmented only them.')
blockwise_flags.define_flags()
flags.mark_flags_as_required(['segmentation_dir'])


@cli.guard
def main(argv):
  cli.no_arguments(argv)
  if not os.path.isdir(FLAGS.segmentation_dir):
    cli.fail(f'--segmentation_dir {FLAGS.segmentation_dir!r} is not a directory')
  try:
    region = run_request.parse_bounding_box(FLAGS.bounding_box)
  except errors.FFNError as e:
    cli.fail(str(e))
  points_zyx = None
  if FLAGS.points_file is not None:
    try:
      points_zyx = axes.points_zyx(seed_points.parse_points(points_file=FLAGS.points_file))
    except errors.FFNError as e:
      cli.fail(str(e))
  plan = blockwise_flags.plan_from_flags(FLAGS.segmentation_dir, region, None,
                                         points_zyx=points_zyx)
  blockwise_flags.run_plan(plan)


def run() -> None:
  """The command-line entry point."""
  cli.run(main)


if __name__ == '__main__':
  run()
