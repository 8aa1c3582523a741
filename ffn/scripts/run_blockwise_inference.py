"""Segments a large region as overlapping subvolumes on daisy workers, stitched into one volume.

Each subvolume is an ordinary run_inference result in the request's
segmentation_output_dir; the stitched segmentation goes to --output_volume.
Rerun the same command after a crash or a failed block: it finishes what is missing.
With seed_policy PolicyPoints only the blocks whose subvolume holds a point run.

  python run_blockwise_inference.py \\
      --inference_request="$(cat configs/inference_training_sample2.pbtxt)" \\
      --bounding_box 'start { x:0 y:0 z:0 } size { x:250 y:250 z:250 }' \\
      --subvolume_size 150,150,150 --overlap 50,50,50 --num_workers 2 \\
      --output_volume results/fib25/stitched.h5:seg
"""

from __future__ import annotations

from typing import Optional

from absl import flags
import numpy as np

from ffn.inference.policies import seed_points
from ffn.inference.request import plan as plan_lib
from ffn.inference.request import run_request
from ffn.inference.request import runner as runner_lib
from ffn.scripts import blockwise_flags
from ffn.utils import axes
from ffn.utils import checks
from ffn.utils import cli
from ffn.utils import errors
from ffn.utils import volumes

FLAGS = flags.FLAGS

flags.DEFINE_string('inference_request', None,
                    'InferenceRequest proto in text format: what to segment and how.')
flags.DEFINE_integer('subvolumes_per_worker', 0,
                     'Subvolumes each inference worker grows at once, their FOVs batched into '
                     "one model call (up to the request's batch_size FOVs, or one per subvolume "
                     "where it sets none). 0: the request's concurrent_requests.")
blockwise_flags.define_flags()
flags.mark_flags_as_required(['inference_request'])
cli.check_flag_ranges({'subvolumes_per_worker': checks.NON_NEGATIVE_INT})


@cli.guard
def main(argv):
  cli.no_arguments(argv)
  try:
    request = run_request.parse_request(FLAGS.inference_request)
    region = run_request.parse_bounding_box(FLAGS.bounding_box)
  except errors.FFNError as e:
    cli.fail(str(e))
  fov_xyz, image_shape = _check_request(request, region)
  plan = blockwise_flags.plan_from_flags(request.segmentation_output_dir, region,
                                         FLAGS.inference_request, image_shape,
                                         _points_zyx(request))
  blockwise_flags.check_blocks_hold_fov(plan.grid, fov_xyz)
  blockwise_flags.run_plan(plan, FLAGS.subvolumes_per_worker)


def _check_request(request, region) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """Checks the request, the region and the model as run_inference.py would, before any block.

  Returns the model's FOV (xyz) and the image's zyx shape.
  """
  runner = runner_lib.Runner()
  try:
    runner.prepare(request)
    runner.check_box(region.start_zyx, region.size_zyx)
    inputs = [v.hdf5 or v.tensorstore for v in (request.image, request.init_segmentation)]
    volumes.check_output_not_input(FLAGS.output_volume, [i for i in inputs if i],
                                   '--output_volume')
    # Restoring checks the checkpoint against the model; workers restore it again.
    model = runner.restore_model()
  except (errors.FFNError, OSError) as e:
    cli.fail(cli.describe_error(e))
  image_shape = tuple(int(n) for n in runner.image_shape_zyx)
  return tuple(int(v) for v in model.info.input_image_size), image_shape


def _points_zyx(request) -> Optional[np.ndarray]:
  """The zyx seed points of a PolicyPoints request (None for other seed policies)."""
  policy = plan_lib.seed_policy(request)
  if policy.cls is not seed_points.PolicyPoints:
    return None
  return axes.points_zyx(seed_points.parse_points(
      **{k: v for k, v in policy.kwargs.items() if k in ('points', 'points_file')}))


def run() -> None:
  """The command-line entry point."""
  cli.run(main)


if __name__ == '__main__':
  run()
