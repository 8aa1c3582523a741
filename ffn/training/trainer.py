"""The FFN training loop: data, FOV movement, optimisation, summaries and checkpoints."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from typing import Callable, Sequence

from absl import logging
import tensorflow as tf

from ffn.training import checkpoint
from ffn.training import examples
from ffn.training import import_util
from ffn.training import inputs
from ffn.training import model as model_lib
from ffn.training import optimizer as optimizer_lib
from ffn.training import precision as precision_lib
from ffn.training import summaries
from ffn.training import tracker as tracker_lib
from ffn.utils import axes
from ffn.utils import checks
from ffn.utils import errors
from ffn.utils import progress


class TrainingError(errors.FFNError, RuntimeError):
  """Training stopped because of a diverged loss or unusable training data."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(inputs.DataConfig):
  """Everything a training run needs; names and defaults follow upstream's train.py flags."""
  model_name: str
  model_args: str | dict
  train_dir: str = '/tmp'
  batch_size: int = 4
  max_steps: int = 10000
  summary_rate_secs: float = 120
  save_checkpoint_secs: float = 300
  seed_pad: float = 0.05
  threshold: float = 0.9
  # One of examples.FOV_POLICIES, or upstream HEAD's alias of one (resolved here).
  fov_policy: str = 'fixed'
  fov_moves: int = 1
  # fixed_offsets_window only; None: upstream HEAD's 8.
  fov_window_radius: int | None = None
  shuffle_moves: bool = True
  optimizer: optimizer_lib.OptimizerConfig = optimizer_lib.OptimizerConfig()
  log_every_secs: float = 10
  random_seed: int | None = None
  # Devices to mirror over; None picks all GPUs when there is more than one.
  devices: Sequence[str] | None = None
  # float32, or bfloat16: the network computes in bfloat16, with float32 weights,
  # loss and optimizer state (float32 where bfloat16 would be emulated slowly).
  precision: str = 'float32'
  # Our or upstream's checkpoint whose network weights a fresh run starts from (step 0,
  # fresh optimizer state); a checkpoint in train_dir is resumed instead.
  init_checkpoint: str | None = None
  # Compile the training step with XLA; on the CPUs measured so far it is many
  # times slower than TensorFlow's own kernels (bench/train.py), so it is off.
  jit_compile: bool = False

  def __post_init__(self):
    for name, valid in SETTING_RANGES.items():
      if getattr(self, name) is not None:
        checks.check_number(getattr(self, name), name, valid)
    object.__setattr__(self, 'fov_policy', examples.resolve_fov_policy(self.fov_policy))
    if self.fov_window_radius is not None and self.fov_policy != 'fixed_offsets_window':
      raise errors.FFNError(f'fov_window_radius is {self.fov_window_radius} but fov_policy is '
                            f'{self.fov_policy!r}; the radius is only used by '
                            'fixed_offsets_window')


# Allowed values of each numeric setting (train.py's flags of the same names). A
# move needs the seed at the new centre to reach `threshold`, and the seed
# starts at examples.INIT_ACTIVATION: a higher threshold would never move.
SETTING_RANGES = {
    'batch_size': checks.POSITIVE_INT,
    'max_steps': checks.POSITIVE_INT,
    'summary_rate_secs': checks.NON_NEGATIVE,
    'save_checkpoint_secs': checks.NON_NEGATIVE,
    'seed_pad': checks.PROBABILITY,
    'threshold': checks.Range(0, examples.INIT_ACTIVATION, low_open=True),
    'fov_moves': checks.NON_NEGATIVE_INT,
    'fov_window_radius': checks.NON_NEGATIVE_INT,
    'image_mean': checks.ANY,
    'image_stddev': checks.POSITIVE,
    'log_every_secs': checks.NON_NEGATIVE,
}


def _cluster_workers() -> int:
  """Number of chief and worker tasks in the TF_CONFIG cluster (0 without one)."""
  try:
    cluster = json.loads(os.environ.get('TF_CONFIG', '{}')).get('cluster', {})
  except json.JSONDecodeError as e:
    raise errors.FFNError(f'TF_CONFIG is not valid JSON: {e}') from e
  return sum(len(cluster.get(kind, [])) for kind in ('chief', 'worker'))


def choose_strategy(devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
  """The distribution strategy for this process.

  MultiWorkerMirroredStrategy when TF_CONFIG names several workers; else
  MirroredStrategy over `devices`, or over all GPUs when there are several; else the
  default (single-device) strategy.
  """
  if devices is None and _cluster_workers() > 1:
    return tf.distribute.MultiWorkerMirroredStrategy()
  if devices is None:
    gpus = tf.config.list_logical_devices('GPU')
    devices = [d.name for d in gpus] if len(gpus) > 1 else None
  if devices and len(devices) > 1:
    return tf.distribute.MirroredStrategy(list(devices))
  return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes checkpoints and summaries (always, outside a cluster)."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return True
  if resolver.task_type == 'chief':
    return True
  return (resolver.task_type == 'worker' and resolver.task_id == 0 and
          'chief' not in resolver.cluster_spec().as_dict())


def _local_replicas(strategy: tf.distribute.Strategy) -> int:
  """Replicas of this process (all of them except under a multi-worker strategy)."""
  if strategy.num_replicas_in_sync == 1:
    return 1
  return len(strategy.extended.worker_devices)


def make_train_step(model: model_lib.FFNModel, optimizer: optimizer_lib.Optimizer,
                    strategy: tf.distribute.Strategy, batch_size: int,
                    compute_dtype: tf.DType = tf.float32, return_gradients: bool = False,
                    jit_compile: bool = False):
  """A tf.function (fixed signature) running one optimisation step on a batch of FOVs.

  Returns (logits [b, z, y, x, 1], loss, learning rate) and increments global_step;
  with `return_gradients`, also the clipped gradients applied (one per variable).
  The network computes in `compute_dtype`; logits, loss, gradients and the
  variables stay float32. `jit_compile` compiles the step with XLA.
  """
  replicas = strategy.num_replicas_in_sync
  # Each process feeds its own batch, split over its local replicas; gradients
  # are averaged over all replicas of all processes.
  local = _local_replicas(strategy)
  if batch_size % local:
    raise errors.FFNError(f'batch_size {batch_size} must be a multiple of the {local} local '
                     'replicas')
  variables = list(model.named_variables().values())
  opt_config = optimizer.config

  def replica_step(image, seed, labels, weights):
    ctx = tf.distribute.get_replica_context()
    share = batch_size // local
    first = (ctx.replica_id_in_sync_group % local) * share
    shard = lambda x: x[first:first + share]
    image, seed, labels, weights = map(shard, (image, seed, labels, weights))
    with tf.GradientTape() as tape:
      logits = model.call_in(image, seed, compute_dtype)
      loss = model_lib.sigmoid_pixelwise_loss(logits, labels, weights)
    grads = tape.gradient(loss, variables)
    if replicas > 1:
      grads = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, grads)
    grads = model_lib.clip_gradients(model_lib.check_finite_gradients(grads))
    lr = optimizer_lib.learning_rate(opt_config, model.global_step)
    optimizer.apply(grads, lr)
    model.global_step.assign_add(1)
    return logits, loss, lr, grads

  seed_zyx = list(axes.xyz_to_zyx(model.info.input_seed_size))
  image_zyx = list(axes.xyz_to_zyx(model.info.input_image_size))
  pred_zyx = list(axes.xyz_to_zyx(model.info.pred_mask_size))
  spec = lambda zyx, name: tf.TensorSpec([batch_size] + zyx + [1], tf.float32, name=name)

  @tf.function(input_signature=[spec(image_zyx, 'patches'), spec(seed_zyx, 'seed'),
                                spec(pred_zyx, 'labels'), spec(pred_zyx, 'loss_weights')],
               jit_compile=jit_compile)
  def train_step(image, seed, labels, weights):
    logits, loss, lr, grads = strategy.run(replica_step,
                                           args=(image, seed, labels, weights))
    if replicas > 1:
      logits = tf.concat(strategy.experimental_local_results(logits), axis=0)
      loss = strategy.reduce(tf.distribute.ReduceOp.MEAN, loss, axis=None)
      lr = strategy.experimental_local_results(lr)[0]
      # All replicas applied the same (all-reduced) gradients.
      grads = [strategy.experimental_local_results(g)[0] for g in grads]
    if return_gradients:
      return logits, loss, lr, grads
    return logits, loss, lr

  return train_step


def _example_reader(dataset: tf.data.Dataset, train_coords: str):
  """A callable returning the next training example as numpy arrays, with clear errors."""
  iterator = iter(dataset)

  def next_example() -> dict:
    try:
      example = next(iterator)
    except tf.errors.OpError as e:
      raise TrainingError(f'cannot read training examples (coordinates {train_coords!r}): '
                          f'{e.message.strip()}') from e
    return {k: v.numpy() for k, v in example.items()}

  return next_example


def train(config: TrainConfig, on_start: Callable[[], None] | None = None,
          stop_requested: Callable[[], bool] = lambda: False,
          on_checkpoint: Callable[[int, str], None] | None = None) -> int:
  """Trains (resuming from config.train_dir when it holds a checkpoint); returns the final step.

  `on_start` is called once the model is built and its checkpoint, if any,
  restored and checked: just before the first step. Once `stop_requested()`
  (checked between steps), the step's checkpoint is saved and errors.Interrupted
  raised.

  `on_checkpoint(step, prefix)` is called on the chief after each checkpoint
  saved while training goes on and after the last one (not after one saved on
  an interruption), once the checkpoint is complete on disk. It runs in the
  training loop: training waits for it, so a hook with long work (e.g.
  validation) hands it to another process or thread. The checkpoint manager
  deletes old checkpoints as new ones come, so work on `prefix` that outlives
  a few more saves must expect it gone. What the hook raises stops training.
  """
  compute_dtype = precision_lib.training_dtype(config.precision)
  rng = random.Random(config.random_seed if config.random_seed is not None
                      else int(time.time()))
  if config.random_seed is not None:
    tf.random.set_seed(config.random_seed)
  strategy = choose_strategy(config.devices)
  with strategy.scope():
    model = import_util.build_model(config.model_name, config.model_args,
                                    batch_size=config.batch_size)
    optimizer = optimizer_lib.Optimizer(config.optimizer,
                                        list(model.named_variables().values()))
  sizes = examples.training_sizes(model.info, config.fov_policy, config.fov_moves)
  dataset = inputs.example_dataset(inputs.PipelineConfig(
      **config.data_fields(), image_size=sizes.image, label_size=sizes.label,
      seed=config.random_seed))

  ckpt = checkpoint.make_checkpoint(model, optimizer)
  manager = checkpoint.make_manager(ckpt, config.train_dir)
  step = _resume(model, optimizer, ckpt, manager)
  if config.init_checkpoint:
    _init_weights(model, config.init_checkpoint, resumed=manager.latest_checkpoint)
  if on_start is not None:
    on_start()
  if step >= config.max_steps:
    logging.info('Step %d already reaches max_steps %d; nothing to do', step, config.max_steps)
    return step

  shifts = list(model.shifts)
  if config.shuffle_moves:
    rng.shuffle(shifts)  # Once per process, as upstream.
  eval_tracker = tracker_lib.EvalTracker(axes.xyz_to_zyx(sizes.eval), shifts=shifts)
  feeder = examples.BatchFeeder(
      _example_reader(dataset, config.train_coords), model.info, config.batch_size,
      fov_policy=config.fov_policy, fov_moves=config.fov_moves, threshold=config.threshold,
      seed_pad=config.seed_pad, shifts=shifts,
      on_example_done=lambda ex, canvas: eval_tracker.add_patch(ex['labels'], canvas,
                                                                ex['weights']),
      record_move=eval_tracker.record_move,
      fov_window_radius=(examples.DEFAULT_WINDOW_RADIUS if config.fov_window_radius is None
                         else config.fov_window_radius))
  train_step = make_train_step(model, optimizer, strategy, config.batch_size, compute_dtype,
                               return_gradients=True, jit_compile=config.jit_compile)
  chief = is_chief(strategy)
  # Other workers of a cluster hold the same weights; only the chief writes.
  writer = tf.summary.create_file_writer(config.train_dir) if chief else None
  logging.info('Training %s %s from step %d to %d, batch %d, %d replica(s); '
               'canvas %s, eval %s (xyz)', config.model_name, model.info, step,
               config.max_steps, config.batch_size, strategy.num_replicas_in_sync,
               sizes.canvas, sizes.eval)

  now = time.time()
  last_summary = last_checkpoint = last_log = now
  steps_at_log = step
  saved_step = None
  try:
    while step < config.max_steps:
      seed, image, labels, weights = feeder.next_batch()
      eval_tracker.track_weights(weights)
      logits, loss, lr, grads = _run_step(train_step, (image, seed, labels, weights), step)
      feeder.update(logits.numpy())
      step += 1
      now = time.time()
      last_step = step == config.max_steps
      if chief and (now - last_summary >= config.summary_rate_secs or last_step):
        _write_summaries(writer, step, loss, lr, eval_tracker, model, grads)
        last_summary = now
      if now - last_log >= config.log_every_secs or last_step:
        rate = (step - steps_at_log) / max(now - last_log, 1e-9)
        logging.info('%s', step_line(step, config.max_steps, float(loss), rate,
                                     config.batch_size))
        last_log, steps_at_log = now, step
      if chief and now - last_checkpoint >= config.save_checkpoint_secs:
        _save(manager, step, on_checkpoint)
        last_checkpoint, saved_step = now, step
      if stop_requested():
        # Ctrl-C, seen between steps: save, then stop.
        saved = manager.save(checkpoint_number=step) if chief else 'nothing (not the chief)'
        raise errors.Interrupted(f'saved {saved}')
  except KeyboardInterrupt:
    # Every finished step is in the variables; keep them, then stop as asked.
    if chief:
      logging.info('Interrupted; saved %s', manager.save(
          checkpoint_number=int(model.global_step.numpy())))
    raise
  if chief:
    if saved_step != step:  # Not twice: a hook may be reading the one just saved.
      _save(manager, step, on_checkpoint)
    writer.close()
  return step


def _save(manager: tf.train.CheckpointManager, step: int,
          on_checkpoint: Callable[[int, str], None] | None) -> None:
  """Saves the checkpoint of `step` and tells the hook."""
  prefix = manager.save(checkpoint_number=step)
  logging.info('Saved %s', prefix)
  if on_checkpoint is not None:
    on_checkpoint(step, prefix)


def step_line(step: int, max_steps: int, loss: float, steps_per_sec: float,
              batch_size: int) -> str:
  """The log line of a training step: step of max_steps, loss, rates, ETA at this rate."""
  return (f'step {progress.done_of(step, max_steps)}, loss {loss:.4f}, {steps_per_sec:.3f} '
          f'steps/s, {steps_per_sec * batch_size:.2f} FOVs/s, '
          f'{progress.eta(step, max_steps, steps_per_sec)}')


def _resume(model, optimizer: optimizer_lib.Optimizer, ckpt: tf.train.Checkpoint,
            manager: tf.train.CheckpointManager) -> int:
  """Restores the latest checkpoint of the manager's directory, if any; returns the step."""
  latest = manager.latest_checkpoint
  if latest:
    # Variable by variable first, for one clear line on a model or optimizer mismatch.
    checkpoint.read_model_values(model, latest)
    checkpoint.check_optimizer_state(optimizer, latest)
    try:
      ckpt.restore(latest).assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError, IndexError) as e:
      raise checkpoint.CheckpointError(
          f'cannot resume from checkpoint {latest!r}: {type(e).__name__}: '
          f'{str(e).strip().splitlines()[0] if str(e).strip() else ""}') from None
    logging.info('Resuming from %s at step %d', latest, int(model.global_step.numpy()))
  return int(model.global_step.numpy())


def _init_weights(model, init_checkpoint: str, resumed: str | None) -> None:
  """Starts from the weights of `init_checkpoint`, unless a checkpoint of train_dir was resumed."""
  if resumed:
    logging.info('--init_checkpoint %s is ignored: resuming %s of --train_dir instead',
                 init_checkpoint, resumed)
    return
  stored_step = checkpoint.load_weights(model, init_checkpoint)
  logging.info('Initialised the network weights from %s (trained %s steps); starting at step '
               '%d with a fresh optimizer', init_checkpoint,
               'unknown' if stored_step is None else stored_step,
               int(model.global_step.numpy()))


def _run_step(train_step, batch, step: int):
  """Runs one training step; a non-finite loss becomes a TrainingError naming the step."""
  try:
    return train_step(*batch)
  except tf.errors.InvalidArgumentError as e:
    if 'Invalid loss' in e.message or 'Invalid gradient' in e.message:
      raise TrainingError(f'loss or gradients not finite (NaN or Inf) at step {step + 1}; '
                          'lower --learning_rate or check the input normalisation') from e
    raise


def _write_summaries(writer, step: int, loss, lr, eval_tracker, model, grads) -> None:
  """Writes loss, learning rate, weight and gradient histograms and EvalTracker summaries."""
  with writer.as_default():
    summaries.scalar('loss', loss, step)
    summaries.scalar('pixel_loss', loss, step)
    summaries.scalar('optimizer_loss', loss, step)
    summaries.scalar('learning_rate', lr, step)
    for (name, var), grad in zip(model.named_variables().items(), grads):
      # Tagged with upstream's variable names, as its histograms were.
      summaries.histogram(checkpoint.upstream_name(name), var.numpy(), step)
      if grad is not None:
        summaries.histogram(f'gradients/{checkpoint.upstream_name(name)}', grad.numpy(), step)
    scalars = eval_tracker.write_summaries(step)
  writer.flush()
  logging.info('Summaries at step %d: %s', step,
               ', '.join(f'{k} {v:.4g}' for k, v in scalars.items()))
