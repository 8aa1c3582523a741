"""train.py's flags of validation while training, their checks, and the hook they make."""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Optional

from absl import flags

from ffn.analysis import checkpoint_selection
from ffn.analysis import skeletons
from ffn.analysis import validation as validation_lib
from ffn.inference.request import run_request
from ffn.training import import_util
from ffn.utils import checks
from ffn.utils import cli

FLAGS = flags.FLAGS

# The flags that only validation (--validation_interval > 0) uses.
_USED_BY_VALIDATION = ('validation_request', 'validation_bounding_box',
                       'validation_groundtruth', 'validation_inline', 'validation_voxel_size',
                       'validation_erl')
_REQUIRED = ('validation_request', 'validation_bounding_box', 'validation_groundtruth')


def define_flags() -> None:
  """Defines the --validation_* flags."""
  flags.DEFINE_integer('validation_interval', 0,
                       'Score the first checkpoint saved at or after every multiple of this '
                       'many steps by segmenting --validation_bounding_box, as '
                       'select_checkpoint.py does; the scores become validation/* '
                       'TensorBoard scalars in <train_dir>/validation. 0: no validation.')
  flags.DEFINE_string('validation_request', None,
                      'InferenceRequest proto in text format that segments the validation box '
                      'with each checkpoint (its model_checkpoint_path and '
                      'segmentation_output_dir are replaced; model_name and model_args left '
                      "out are the training run's, image_mean and image_stddev left out "
                      "--image_mean and --image_stddev).")
  flags.DEFINE_string('validation_bounding_box', None,
                      'Validation box, a text BoundingBox proto in global xyz voxels, inside '
                      'the image and the groundtruth.')
  flags.DEFINE_string('validation_groundtruth', None,
                      'Groundtruth volume spec path:dataset of the validation box '
                      '(0 = unlabelled).')
  flags.DEFINE_boolean('validation_inline', False,
                       'Validate in the training process, training waiting meanwhile. '
                       'Default: in a child process, one at a time; a checkpoint due while '
                       'one runs waits, a newer one due before it starts takes its place.')
  flags.DEFINE_list('validation_voxel_size', ['10', '10', '10'],
                    'xyz voxel size in nm for the validation ERL.')
  flags.DEFINE_boolean('validation_erl', True, 'Score ERL on groundtruth skeletons '
                       '(kimimaro); --novalidation_erl skips it.')
  cli.check_flag_ranges({'validation_interval': checks.NON_NEGATIVE_INT})


def validator_from_flags(start_step: int) -> ContextManager[Optional[Callable[[int, str], None]]]:
  """The trainer's on-checkpoint hook of the flags (None without validation), checked now.

  `start_step` is the step training starts from. Bad flags, a request that
  does not parse, a box outside the image or the groundtruth, or smaller than
  the model's FOV, fail here in one line, before training starts.
  """
  if not FLAGS.validation_interval:
    given = [name for name in _USED_BY_VALIDATION if FLAGS[name].present]
    if given:
      cli.fail(f'--{given[0]} applies to validation while training; give '
               '--validation_interval too')
    return contextlib.nullcontext()
  missing = [name for name in _REQUIRED if not FLAGS[name].value]
  if missing:
    cli.fail(f'--validation_interval {FLAGS.validation_interval} needs --{missing[0]}')
  if FLAGS['validation_voxel_size'].present and not FLAGS.validation_erl:
    cli.fail('--validation_voxel_size has no effect with --novalidation_erl')
  request = validation_lib.training_request(
      run_request.parse_request(FLAGS.validation_request, 'validation_request'),
      FLAGS.model_name, FLAGS.model_args, FLAGS.image_mean, FLAGS.image_stddev)
  validation = checkpoint_selection.Validation(
      request=request,
      box=run_request.parse_bounding_box(FLAGS.validation_bounding_box,
                                         'validation_bounding_box'),
      groundtruth=FLAGS.validation_groundtruth,
      voxel_size_xyz=skeletons.check_voxel_size(FLAGS.validation_voxel_size),
      erl=FLAGS.validation_erl)
  model = import_util.build_model(FLAGS.model_name, FLAGS.model_args)
  checkpoint_selection.check_validation(validation, model.info.input_image_size)
  return validation_lib.Validator(validation, FLAGS.validation_interval, FLAGS.train_dir,
                                  start_step, inline=FLAGS.validation_inline)
