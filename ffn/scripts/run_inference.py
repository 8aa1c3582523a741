"""Runs FFN inference within one bounding box of a volume.

  python run_inference.py \
      --inference_request="$(cat configs/inference_training_sample2.pbtxt)" \
      --bounding_box 'start { x:0 y:0 z:0 } size { x:250 y:250 z:250 }'
"""

from __future__ import annotations


from absl import app
from absl import flags

from ffn.utils import cli
from ffn.inference import run_request

FLAGS = flags.FLAGS

flags.DEFINE_string('inference_request', None,
                    'InferenceRequest proto in text format: what to segment and how.')
flags.DEFINE_string('inference_options', None,
                    'InferenceOptions proto in text format; accepted for compatibility, '
                    'unused (set inference_options inside --inference_request).')
flags.DEFINE_string('bounding_box', None,
                    'BoundingBox proto in text format (xyz): the area to segment.')
flags.mark_flags_as_required(['inference_request', 'bounding_box'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    request = run_request.parse_request(FLAGS.inference_request)
    bbox = run_request.parse_bounding_box(FLAGS.bounding_box)
    run_request.run_inference(request, bbox)
  except (ValueError, NotImplementedError, OSError) as e:
    cli.fail(str(e))


def run() -> None:
  """The command-line entry point."""
  app.run(main)


if __name__ == '__main__':
  run()
