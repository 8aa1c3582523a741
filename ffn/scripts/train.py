"""Trains an FFN model; flags as upstream's train.py. Resumes from --train_dir automatically.

Distribution: with more than one GPU visible, training runs under
tf.distribute.MirroredStrategy (one process, synchronous, --batch_size split over the
GPUs). Upstream's TF1 distribution flags (--master, --ps_tasks, --task,
--replica_step_delay, --sync_sgd, --replicas_to_aggregate, --total_replicas) are
accepted for compatibility, warned about when given, and replaced by tf.distribute;
for several machines use MultiWorkerMirroredStrategy with TF_CONFIG (see README).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time

# oneDNN kernels make 3-D convolutions (and above all their gradients) several times
# faster on x86 CPUs; they must be chosen before TensorFlow is imported.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging

from ffn.scripts import validation_flags
from ffn.training import augmentation
from ffn.training import checkpoint
from ffn.training import em_augmentation
from ffn.training import examples
from ffn.training import optimizer as optimizer_lib
from ffn.training import resume
from ffn.training import trainer
from ffn.utils import atomic
from ffn.utils import cli
from ffn.utils import errors
from ffn.utils import locks
from ffn.utils import volumes

# Training data.
flags.DEFINE_string('train_coords', None,
                    'GZIP TFRecord(s) of training coordinates: a file, a glob, path@N shards '
                    '(path-0000i-of-0000N) or a comma-separated list of these.')
flags.DEFINE_string('data_volumes', None, 'Comma-separated <volume_name>:<spec> image volumes '
                    f'(spec: {volumes.SPEC_FORMS}); names match label_volume_name in the '
                    'coordinates.')
flags.DEFINE_string('label_volumes', None, 'Comma-separated <volume_name>:<spec> label volumes.')
flags.DEFINE_string('model_name', None,
                    '[<packages>.]<module>.<Class>; looked up under ffn.training.models first.')
flags.DEFINE_string('model_args', None, 'JSON object of model constructor arguments.')

# Training infrastructure.
flags.DEFINE_string('train_dir', '/tmp', 'Where checkpoints, summaries and flags are saved.')
flags.DEFINE_string('master', '', 'TF1 master address; replaced by tf.distribute, unused.')
flags.DEFINE_integer('batch_size', 4, 'Number of examples (FOVs) per step.')
flags.DEFINE_integer('task', 0, 'TF1 replica id; replaced by tf.distribute, unused.')
flags.DEFINE_integer('ps_tasks', 0, 'TF1 parameter servers; replaced by tf.distribute, unused.')
flags.DEFINE_integer('max_steps', 10000, 'Train until the global step reaches this.')
flags.DEFINE_integer('replica_step_delay', 300,
                     'TF1 replica start delay in steps; replaced by tf.distribute, unused.')
flags.DEFINE_integer('summary_rate_secs', 120, 'Seconds between summaries.')
flags.DEFINE_integer('save_checkpoint_secs', 300, 'Seconds between checkpoints.')
flags.DEFINE_string('init_checkpoint', None,
                    'Checkpoint (upstream TF1 or this port\'s; a prefix or a directory) whose '
                    'network weights a new run starts from, at step 0 with a fresh optimizer. '
                    'Ignored (and logged) when --train_dir holds a checkpoint to resume.')

# FFN training.
flags.DEFINE_float('seed_pad', 0.05, 'Probability of the unknown area of the seed.')
flags.DEFINE_float('threshold', 0.9,
                   'Probability the seed must reach at a new FOV centre for a move there.')
flags.DEFINE_enum('fov_policy', 'fixed',
                  list(examples.FOV_POLICIES) + list(examples.FOV_POLICY_ALIASES),
                  'fixed: the origin then model.shifts; max_pred_moves: moves to the maxima '
                  'of the prediction on the faces of the +-deltas cuboid, as in inference '
                  '(upstream 2019); max_pred_offsets: the same, taking only moves whose '
                  'target the seed reaches and the labels hold (upstream HEAD); '
                  'fixed_offsets_window (HEAD: fixed_window): fixed, but any voxel of the '
                  '+-deltas shell within --fov_window_radius of the target may reach '
                  '--threshold; no_offsets (HEAD: no_step): one FOV per example, at its centre.')
flags.DEFINE_integer('fov_moves', 1, 'Moves by deltas per direction (max_pred_moves only).')
flags.DEFINE_integer('fov_window_radius', None,
                     'fixed_offsets_window: how far (voxels, every axis) from a move target '
                     'the shell voxels looked at reach; default 8, as upstream HEAD.')
flags.DEFINE_boolean('shuffle_moves', True,
                     'Shuffle the fixed-policy moves once at start.')
flags.DEFINE_float('image_mean', None, 'Mean image intensity for normalisation.')
flags.DEFINE_float('image_stddev', None, 'Image intensity standard deviation for normalisation.')
flags.DEFINE_list('image_offset_scale_map', None,
                  'Per-volume normalisation, entries <volume_name>:<offset>:<scale>.')
flags.DEFINE_list('permutable_axes', ['1', '2'],
                  'Subset of the z,y,x axes (0,1,2) that augmentation may permute.')
flags.DEFINE_list('reflectable_axes', ['0', '1', '2'],
                  'Subset of the z,y,x axes (0,1,2) that augmentation may reflect.')
# EM augmentations (upstream HEAD ffn/training/augmentation.py and diluvian); all off by default.
flags.DEFINE_float('elastic_warp_prob', 0.0,
                   'Probability that an example is elastically warped in yx (image bilinear, '
                   'labels and loss weights nearest-neighbour; the centre stays put).')
flags.DEFINE_float('elastic_warp_stdev_ratio', 0.03,
                   'Warp control point displacement stdev, as a fraction of the smaller of '
                   'the patch y and x sizes.')
flags.DEFINE_float('elastic_warp_control_points_ratio', 0.1,
                   'Warp control points per voxel along y and x (at least 2 a side).')
flags.DEFINE_float('misalignment_prob', 0.0,
                   'Probability that an example\'s sections are misaligned (image, labels '
                   'and loss weights alike): one section slips, or all beyond a plane shift.')
flags.DEFINE_integer('misalignment_max_shift', 4, 'Largest misalignment in y and x, voxels.')
flags.DEFINE_float('misalignment_slip_ratio', 0.5,
                   'Probability that a misalignment is one slipped section rather than a '
                   'translation of all sections beyond a plane.')
flags.DEFINE_float('missing_section_prob', 0.0,
                   'Probability that each section (but the centre one) is replaced by a '
                   'constant.')
flags.DEFINE_float('out_of_focus_prob', 0.0,
                   'Probability that each section is blurred in yx.')
flags.DEFINE_float('out_of_focus_max_sigma', 2.0,
                   'Blur Gaussian sigma drawn in [0, this), voxels.')
flags.DEFINE_list('contrast_range', None,
                  'low,high: each example\'s sections get their contrast scaled by a factor '
                  'drawn in this range (upstream HEAD contrast_factor_range).')
flags.DEFINE_list('brightness_range', None,
                  'low,high: an offset drawn in this range (normalised intensity units) is '
                  'added to each example (upstream HEAD brightness_factor_range).')
flags.DEFINE_float('noise_multiplicative_stdev', 0.0,
                   'Each section is multiplied by N(1, this) (diluvian augment_noise mul).')
flags.DEFINE_float('noise_additive_stdev', 0.0,
                   'Each section gets N(0, this) added (diluvian augment_noise add).')
flags.DEFINE_enum('precision', 'float32', ['float32', 'bfloat16'],
                  'What the network computes in. bfloat16 keeps float32 weights, loss, '
                  'optimizer state and checkpoints; it runs float32 (and says so) where '
                  'the CPU has no AMX/AVX512_BF16 and no recent GPU is used.')
flags.DEFINE_boolean('jit_compile', False,
                     'Compile the training step with XLA. Off: on the CPUs measured it is '
                     'several times slower (python bench/train.py measures it, GPU included).')

# Optimizer.
flags.DEFINE_enum('optimizer', 'sgd', list(optimizer_lib.OPTIMIZERS), 'Which optimizer to use.')
flags.DEFINE_float('learning_rate', 0.001, 'Initial learning rate.')
flags.DEFINE_float('momentum', 0.9, 'Momentum (momentum and rmsprop).')
flags.DEFINE_float('learning_rate_decay_factor', None,
                   'Staircase exponential decay factor, applied every --decay_steps steps.')
flags.DEFINE_integer('decay_steps', None, 'Steps between learning-rate decays.')
flags.DEFINE_float('num_epochs_per_decay', 2.0,
                   'Upstream flag, unused there and here; use --decay_steps.')
flags.DEFINE_float('rmsprop_decay', 0.9, 'Decay term for RMSProp.')
flags.DEFINE_float('adam_beta1', 0.9, 'Gradient decay term for Adam.')
flags.DEFINE_float('adam_beta2', 0.999, 'Gradient^2 decay term for Adam.')
flags.DEFINE_float('epsilon', 1e-8, 'Epsilon term for RMSProp and Adam.')
flags.DEFINE_boolean('sync_sgd', False,
                     'TF1 SyncReplicasOptimizer; replaced by tf.distribute (always synchronous).')
flags.DEFINE_integer('replicas_to_aggregate', None,
                     'TF1 sync SGD setting; replaced by tf.distribute, unused.')
flags.DEFINE_integer('total_replicas', None,
                     'TF1 sync SGD setting; replaced by tf.distribute, unused.')

validation_flags.define_flags()

FLAGS = flags.FLAGS
cli.check_flag_ranges({name: valid for name, valid in {
    **trainer.SETTING_RANGES, **optimizer_lib.SETTING_RANGES,
    **em_augmentation.SETTING_RANGES}.items() if name in FLAGS})

_TF1_FLAGS = ('master', 'ps_tasks', 'task', 'replica_step_delay', 'sync_sgd',
              'replicas_to_aggregate', 'total_replicas')


def _report_tf1_flags() -> None:
  """Warns about each of upstream's TF1 distribution flags given on the command line."""
  for name in _TF1_FLAGS:
    if FLAGS[name].present:
      logging.warning('--%s=%r is a TF1 distribution flag and has no effect: training '
                      'uses tf.distribute (MirroredStrategy over local GPUs; see README for '
                      'MultiWorkerMirroredStrategy)', name, FLAGS[name].value)


def _range_flag(name: str) -> tuple[float, float] | None:
  """The low,high value of flag --`name` as two floats (None when unset)."""
  values = FLAGS[name].value
  if values is None:
    return None
  try:
    return tuple(float(v) for v in values)
  except ValueError:
    raise errors.FFNError(f'--{name} is {errors.shown(",".join(values))}; expected two '
                          'numbers low,high') from None


def _augmentations() -> em_augmentation.EMAugmentation:
  """The EM augmentation flags as settings; a strength given without its switch is refused."""
  for name, switch in em_augmentation.DEPENDS_ON.items():
    if FLAGS[name].present and not FLAGS[switch].value:
      raise errors.FFNError(f'--{name} has no effect unless --{switch} is above 0')
  settings = {f.name: FLAGS[f.name].value
              for f in dataclasses.fields(em_augmentation.EMAugmentation)}
  settings.update(contrast_range=_range_flag('contrast_range'),
                  brightness_range=_range_flag('brightness_range'))
  return em_augmentation.EMAugmentation(**settings)


def _save_flags(train_dir: str) -> None:
  """Records the flags of this run in train_dir/flags.<unixtime>."""
  os.makedirs(train_dir, exist_ok=True)
  atomic.atomic_write_text(os.path.join(train_dir, 'flags.%d' % time.time()),
                           FLAGS.flags_into_string())


@cli.guard
def main(argv):
  cli.no_arguments(argv)
  _report_tf1_flags()
  atomic.check_writable_directory(FLAGS.train_dir, '--train_dir')
  config = trainer.TrainConfig(
      train_coords=FLAGS.train_coords, data_volumes=FLAGS.data_volumes,
      label_volumes=FLAGS.label_volumes, model_name=FLAGS.model_name,
      model_args=FLAGS.model_args, train_dir=FLAGS.train_dir, batch_size=FLAGS.batch_size,
      max_steps=FLAGS.max_steps, summary_rate_secs=FLAGS.summary_rate_secs,
      save_checkpoint_secs=FLAGS.save_checkpoint_secs, seed_pad=FLAGS.seed_pad,
      threshold=FLAGS.threshold, fov_policy=FLAGS.fov_policy, fov_moves=FLAGS.fov_moves,
      fov_window_radius=FLAGS.fov_window_radius, augmentations=_augmentations(),
      shuffle_moves=FLAGS.shuffle_moves, image_mean=FLAGS.image_mean,
      image_stddev=FLAGS.image_stddev, image_offset_scale_map=FLAGS.image_offset_scale_map,
      permutable_axes=augmentation.check_axes(FLAGS.permutable_axes, '--permutable_axes'),
      reflectable_axes=augmentation.check_axes(FLAGS.reflectable_axes, '--reflectable_axes'),
      precision=FLAGS.precision, init_checkpoint=FLAGS.init_checkpoint,
      jit_compile=FLAGS.jit_compile,
      optimizer=optimizer_lib.OptimizerConfig(
          optimizer=FLAGS.optimizer, learning_rate=FLAGS.learning_rate,
          momentum=FLAGS.momentum,
          learning_rate_decay_factor=FLAGS.learning_rate_decay_factor,
          decay_steps=FLAGS.decay_steps, rmsprop_decay=FLAGS.rmsprop_decay,
          adam_beta1=FLAGS.adam_beta1, adam_beta2=FLAGS.adam_beta2, epsilon=FLAGS.epsilon))
  validator = validation_flags.validator_from_flags(_start_step(FLAGS.train_dir))
  with cli.deferred_interrupt(), _train_dir_lock(FLAGS.train_dir), validator as on_checkpoint:
    if checkpoint.latest_checkpoint(FLAGS.train_dir):
      # The newest saved flags are the previous run's: this run saves its own once it starts.
      resume.check_settings(FLAGS.train_dir, FLAGS.model_name, FLAGS.model_args,
                            FLAGS.optimizer)
    # Saved once the model and any checkpoint check out, so a refused run records nothing.
    trainer.train(config, on_start=lambda: _save_flags(FLAGS.train_dir),
                  stop_requested=cli.stop_requested, on_checkpoint=on_checkpoint)


def _start_step(train_dir: str) -> int:
  """The step of the checkpoint training resumes from (0 for a fresh run)."""
  latest = checkpoint.latest_checkpoint(train_dir)
  return (checkpoint.checkpoint_step(latest) or 0) if latest else 0


def _train_dir_lock(train_dir: str):
  """The lock of --train_dir; only the chief of a multi-worker cluster takes it."""
  try:
    tf_config = json.loads(os.environ.get('TF_CONFIG') or '{}')
  except ValueError:
    tf_config = {}
  task = tf_config.get('task', {}) if isinstance(tf_config, dict) else {}
  has_chief = 'chief' in (tf_config.get('cluster') or {}) if isinstance(tf_config, dict) else False
  chief = (task.get('type') in (None, 'chief') or
           (task.get('type') == 'worker' and not has_chief and int(task.get('index', 0)) == 0))
  if not chief:
    return contextlib.nullcontext()
  return locks.hold(os.path.join(train_dir, 'train.lock'), f'--train_dir {train_dir}')


def _run_main() -> None:
  """Runs main; known bad-input errors end the process with one clear message and exit 1."""
  with cli.fail_on(errors.FFNError):
    cli.run(main)


def run() -> None:
  """The command-line entry point."""
  for required in ('train_coords', 'data_volumes', 'label_volumes', 'model_name',
                   'model_args'):
    flags.mark_flag_as_required(required)
  _run_main()


if __name__ == '__main__':
  run()
