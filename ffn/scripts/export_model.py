"""Exports a checkpoint once as an OpenVINO model, so that inference workers need no TensorFlow.

  python export_model.py \
      --inference_request="$(cat configs/inference_training_sample2_fast.pbtxt)" \
      --output models/fib25/exported/model.xml

writes model.xml, model.bin and the model.json sidecar. A request with
`engine: OPENVINO` and `model_checkpoint_path: "models/fib25/exported/model.xml"`
then runs without TensorFlow.
"""

from __future__ import annotations

from absl import flags

from ffn.inference import model_export
from ffn.inference.request import run_request
from ffn.utils import cli

FLAGS = flags.FLAGS

flags.DEFINE_string('inference_request', None,
                    'InferenceRequest proto in text format, as for run_inference.py; its '
                    'model_name, model_args and model_checkpoint_path say what to export (its '
                    'other fields are for inference and do not change the export).')
flags.DEFINE_string('model_name', None,
                    'Model class, e.g. convstack_3d.ConvStack3DFFNModel (instead of '
                    '--inference_request).')
flags.DEFINE_string('model_args', None,
                    'JSON object of the model\'s constructor arguments, e.g. '
                    '\'{"depth": 12, "fov_size": [33, 33, 33], "deltas": [8, 8, 8]}\'.')
flags.DEFINE_string('model_checkpoint_path', None,
                    'TensorFlow checkpoint prefix (or a directory: its latest checkpoint).')
flags.DEFINE_string('output', None,
                    'The .xml file to write; its .bin and .json sidecar go beside it. Existing '
                    'files are replaced only if an earlier export wrote them.')
flags.mark_flags_as_required(['output'])

_MODEL_FLAGS = ('model_name', 'model_args', 'model_checkpoint_path')


@cli.guard
def main(argv):
  cli.no_arguments(argv)
  given = [f'--{name}' for name in _MODEL_FLAGS if FLAGS[name].present]
  if FLAGS.inference_request is not None:
    if given:
      cli.fail(f'give either --inference_request or {", ".join(given)}, not both: both name '
               'the model to export')
    request = run_request.parse_request(FLAGS.inference_request)
    name, args, path = request.model_name, request.model_args, request.model_checkpoint_path
  else:
    if not FLAGS.model_name or not FLAGS.model_checkpoint_path:
      cli.fail('give --inference_request, or --model_name and --model_checkpoint_path (and '
               '--model_args): the model to export')
    name, args, path = FLAGS.model_name, FLAGS.model_args, FLAGS.model_checkpoint_path
  model = model_export.export_model(name, args, path, FLAGS.output)
  print(f'{model.xml_path}: {model.model_name} from {model.checkpoint_path} '
        f'(step {model.checkpoint_step}); run it with engine: OPENVINO and '
        f'model_checkpoint_path: "{model.xml_path}"')


def run() -> None:
  """The command-line entry point."""
  cli.run(main)


if __name__ == '__main__':
  run()
