"""Runs FFN inference within one bounding box of a volume.

  python run_inference.py \\
      --inference_request="$(cat configs/inference_training_sample2.pbtxt)" \\
      --bounding_box 'start { x:0 y:0 z:0 } size { x:250 y:250 z:250 }'
"""

from __future__ import annotations


from absl import flags

from ffn.inference.request import run_request
from ffn.utils import cli

FLAGS = flags.FLAGS

flags.DEFINE_string('inference_request', None,
                    'InferenceRequest proto in text format: what to segment and how.')
flags.DEFINE_string('inference_options', None,
                    'InferenceOptions proto in text format; accepted for compatibility, '
                    'unused (set inference_options inside --inference_request).')
flags.DEFINE_multi_string('bounding_box', None,
                          'BoundingBox proto in text format (xyz): the area to segment. Repeat '
                          'it for several boxes, which go concurrent_requests at a time through '
                          'one engine (batch_size FOVs per model call).')
flags.DEFINE_boolean('reuse_mismatched_results', False,
                     'Keep a finished result of this box even if it was made with other '
                     'settings (without it, such a result is an error).')
flags.mark_flags_as_required(['inference_request', 'bounding_box'])


@cli.guard
def main(argv):
  cli.no_arguments(argv)
  request = run_request.parse_request(FLAGS.inference_request)
  boxes = [run_request.parse_bounding_box(text) for text in FLAGS.bounding_box]
  with cli.deferred_interrupt():
    run_request.run_inference(request, boxes, FLAGS.reuse_mismatched_results,
                              stop_requested=cli.stop_requested)


def run() -> None:
  """The command-line entry point."""
  cli.run(main)


if __name__ == '__main__':
  run()
