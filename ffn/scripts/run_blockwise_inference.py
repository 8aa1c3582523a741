"""Segments a large region as overlapping subvolumes on daisy workers, stitched into one volume.

Each subvolume is an ordinary run_inference result in the request's
segmentation_output_dir; the stitched segmentation goes to --output_volume.
Rerun the same command after a crash or a failed block: it finishes what is missing.

  python run_blockwise_inference.py \
      --inference_request="$(cat configs/inference_training_sample2.pbtxt)" \
      --bounding_box 'start { x:0 y:0 z:0 } size { x:250 y:250 z:250 }' \
      --subvolume_size 150,150,150 --overlap 50,50,50 --num_workers 2 \
      --output_volume results/fib25/stitched.h5:seg
"""

from __future__ import annotations

from absl import app
from absl import flags

from ffn.inference import run_request
from ffn.inference import volumes as inference_volumes
from ffn.scripts import blockwise_flags
from ffn.utils import cli

FLAGS = flags.FLAGS

flags.DEFINE_string('inference_request', None,
                    'InferenceRequest proto in text format: what to segment and how.')
blockwise_flags.define_flags()
flags.mark_flags_as_required(['inference_request'])


@cli.guard
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    request = run_request.parse_request(FLAGS.inference_request)
    region = run_request.parse_bounding_box(FLAGS.bounding_box)
  except ValueError as e:
    cli.fail(str(e))
  if not request.segmentation_output_dir:
    cli.fail('InferenceRequest.segmentation_output_dir must be set')
  try:
    image_shape = inference_volumes.decorated_volume(request.image).shape[-3:]
  except (ValueError, NotImplementedError, OSError) as e:
    cli.fail(f'InferenceRequest.image: {e}')
  plan = blockwise_flags.plan_from_flags(request.segmentation_output_dir, region,
                                         FLAGS.inference_request, image_shape)
  blockwise_flags.run_plan(plan)


def run() -> None:
  """The command-line entry point."""
  app.run(main)


if __name__ == '__main__':
  run()
