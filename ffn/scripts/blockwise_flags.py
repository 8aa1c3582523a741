"""The flags run_blockwise_inference.py and stitch_segmentation.py share, and their checks."""

from __future__ import annotations

from typing import Optional, Sequence

from absl import flags
from absl import logging
import numpy as np

from ffn.blockwise import grid as grid_lib
from ffn.blockwise import plan as plan_lib
from ffn.blockwise import scheduling
from ffn.blockwise import stitching
from ffn.utils import axes
from ffn.utils import bounding_box
from ffn.utils import checks
from ffn.utils import cli
from ffn.utils import errors

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines the region, grid, output, stitching and worker flags."""
  flags.DEFINE_string('bounding_box', None,
                      'BoundingBox proto in text format (xyz): the whole region to segment.')
  flags.DEFINE_string('output_volume', None,
                      'Where the stitched segmentation goes (uint64 global ids; the shape of '
                      'the image, or for stitch_segmentation.py from voxel 0 to the region '
                      'end; 0 outside the region): path.h5:dataset, '
                      'zarr:///abs/path.zarr, n5:///abs/path.n5/segmentation (a dataset in an N5 '
                      'container), precomputed:///abs/dir or a '
                      'TensorStore JSON spec.')
  flags.DEFINE_list('voxel_size', None, 'x,y,z voxel size in nm, recorded with the stitched '
                    'output (zarr: funlib\'s voxel_size, offset, axis_names, units; N5 and '
                    'precomputed: resolution; HDF5: CREMI\'s zyx resolution). '
                    'Default: none recorded (precomputed: 1,1,1).')
  define_grid_flags()
  define_worker_flags()
  flags.mark_flags_as_required(['bounding_box', 'subvolume_size', 'overlap', 'output_volume'])


def define_grid_flags(what: str = '') -> None:
  """Defines the subvolume grid and stitching flags; `what` ends their help (the script's use)."""
  flags.DEFINE_list('subvolume_size', None, 'x,y,z size of one subvolume (one block).' + what)
  flags.DEFINE_list('overlap', None, 'x,y,z overlap of neighbouring subvolumes; at least the '
                    "model's FOV size for subvolumes that agree on the objects they share.")
  flags.DEFINE_integer('min_overlap_size', 100,
                       'Voxels two objects must share in an overlap to be joined.')
  flags.DEFINE_float('min_overlap_fraction', 0.5,
                     'Share of the smaller object\'s voxels in an overlap that two objects '
                     'must share there to be joined (above 0, at most 1).')
  cli.check_flag_ranges({'min_overlap_size': checks.POSITIVE_INT,
                         'min_overlap_fraction': checks.Range(0, 1, low_open=True)})


def define_worker_flags() -> None:
  """Defines the flags of the workers and the scheduler that runs the blocks."""
  flags.DEFINE_integer('num_workers', 1, 'Workers per task (each holds one subvolume).')
  flags.DEFINE_string('worker_command', None,
                      "Start workers with this shell command template, e.g. 'srun -n1 "
                      "{command}' or 'bsub -K {command}'; {command} is the worker's command "
                      'line, which connects back to this scheduler. Default: local processes.')
  flags.DEFINE_integer('threads_per_worker', 0,
                       "CPU threads of each inference worker's engine (OpenVINO threads, "
                       "TensorFlow's intra-/inter-op pools); {threads} in --worker_command. "
                       "0: local workers share this machine's CPUs evenly, launched workers use "
                       'every CPU they are given.')
  flags.DEFINE_string('scheduler_host', None,
                      'Address workers connect to (default: 127.0.0.1 for local workers, '
                      'else detected).')
  flags.DEFINE_integer('max_retries', 2, 'Retries of a failing block before it is reported.')
  flags.DEFINE_float('block_timeout_secs', 24 * 3600.0,
                     'A block still running after this long is stopped and retried.')
  cli.check_flag_ranges({'num_workers': checks.POSITIVE_INT,
                         'threads_per_worker': checks.NON_NEGATIVE_INT,
                         'max_retries': checks.NON_NEGATIVE_INT,
                         'block_timeout_secs': checks.POSITIVE})


def grid_from_flags(region: bounding_box.BoundingBox) -> grid_lib.BlockGrid:
  """The block grid of --subvolume_size and --overlap over `region`, or a one-line failure."""
  size = cli.parse_triple(FLAGS.subvolume_size, 'subvolume_size', valid=checks.POSITIVE_INT)
  overlap = cli.parse_triple(FLAGS.overlap, 'overlap', valid=checks.NON_NEGATIVE_INT)
  if any(o >= s for o, s in zip(overlap, size)):
    cli.fail(f'--overlap {",".join(FLAGS.overlap)} must be at least 0 and smaller than '
             f'--subvolume_size {",".join(FLAGS.subvolume_size)} on every axis')
  for axis, o, s, n in zip('xyz', overlap, size, region.size):
    if o == 0 and n > s:
      cli.fail(f'--overlap is 0 along {axis}, where the region ({n}) holds more than one '
               f'subvolume ({s}): objects cannot be matched across those borders')
  return grid_lib.BlockGrid.from_xyz(region, size, overlap)


def check_blocks_hold_fov(grid: grid_lib.BlockGrid, fov_xyz) -> None:
  """Fails unless every block holds the model's FOV; warns when overlaps are narrower."""
  smallest = axes.xyz(tuple(min(grid.block_size(i)[a] for i in grid.indices()) for a in range(3)))
  if any(n < f for n, f in zip(smallest, fov_xyz)):
    cli.fail(f'blocks of size {smallest} (xyz; --subvolume_size, cut to --bounding_box) are '
             f"smaller than the model's field of view {tuple(fov_xyz)} (xyz), so no FOV fits "
             'in them; give a --subvolume_size (and a box) at least that large')
  overlap = axes.xyz(grid.overlap)
  if len(grid) > 1 and any(o < f - 1 for o, f, n in zip(overlap, fov_xyz, axes.xyz(grid.shape))
                           if n > 1):
    logging.warning('--overlap %s (xyz) is narrower than the field of view %s less one: block '
                    'borders then fall where no FOV of either block was centred, and objects '
                    'are matched across them on fewer voxels', overlap, tuple(fov_xyz))


def check_run_flags() -> None:
  """One-line failures for bad worker flags."""
  if FLAGS.worker_command is not None and '{command}' not in FLAGS.worker_command:
    cli.fail(f'--worker_command {FLAGS.worker_command!r} has no {{command}} placeholder')
  if (FLAGS.worker_command is not None and '{threads}' in FLAGS.worker_command
      and FLAGS.threads_per_worker == 0):
    cli.fail(f'--worker_command {FLAGS.worker_command!r} has a {{threads}} placeholder; give '
             '--threads_per_worker, the count to put there')


def blocks_with_points(grid: grid_lib.BlockGrid, points_zyx: np.ndarray
                       ) -> tuple[grid_lib.Index, ...]:
  """The blocks whose subvolume holds a seed point; a one-line failure when none does."""
  active = tuple(grid.blocks_holding(points_zyx))
  if not active:
    cli.fail(f'none of the {len(points_zyx)} points of seed_policy_args lies inside '
             '--bounding_box, so there is nothing to segment')
  logging.info('PolicyPoints: %d of %d blocks hold one of the %d points; only they run.',
               len(active), len(grid), len(points_zyx))
  return active


def plan_from_flags(segmentation_dir: str, region: bounding_box.BoundingBox,
                    request_text: Optional[str],
                    output_shape_zyx: Optional[Sequence[int]] = None,
                    points_zyx: Optional[np.ndarray] = None) -> plan_lib.BlockwisePlan:
  """The plan of the flags for results in `segmentation_dir`.

  With `points_zyx`, only the blocks holding one of those points are run.
  """
  check_run_flags()
  grid = grid_from_flags(region)
  active = None if points_zyx is None else blocks_with_points(grid, points_zyx)
  voxel_size = None
  if FLAGS.voxel_size is not None:
    voxel_size = cli.parse_triple(FLAGS.voxel_size, 'voxel_size', float, checks.POSITIVE)
  if output_shape_zyx is not None and any(
      n < e for n, e in zip(output_shape_zyx, axes.zyx(region.end))):
    cli.fail(f'--bounding_box ends at {tuple(int(e) for e in region.end)} (xyz), beyond the '
             f'image volume of size {axes.xyz(output_shape_zyx)} (xyz)')
  settings = stitching.StitchSettings(segmentation_dir, grid, FLAGS.output_volume,
                                      FLAGS.min_overlap_size,
                                      None if output_shape_zyx is None else tuple(output_shape_zyx),
                                      FLAGS.min_overlap_fraction, active,
                                      voxel_size_xyz=voxel_size)
  try:
    settings.output()
  except errors.FFNError as e:
    cli.fail(str(e))
  return plan_lib.BlockwisePlan(settings, request_text, max_retries=FLAGS.max_retries,
                                  block_timeout_secs=FLAGS.block_timeout_secs)


def run_plan(plan: plan_lib.BlockwisePlan, subvolumes_per_worker: int = 0) -> None:
  """Runs the plan with the worker flags; one-line failure naming the failed blocks."""
  try:
    scheduling.run(plan, FLAGS.num_workers, FLAGS.worker_command, FLAGS.scheduler_host,
                   threads_per_worker=FLAGS.threads_per_worker,
                   subvolumes_per_worker=subvolumes_per_worker)
  except (errors.FFNError, OSError) as e:
    cli.fail(str(e))
