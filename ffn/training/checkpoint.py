"""Model checkpoints: our TF2 object-based ones and upstream's TF1 name-based ones.

Both formats are read through one loader, `restore_model`, which tells them apart by
what the checkpoint holds: TF2 object-based checkpoints carry an object graph.
"""

from __future__ import annotations

import os
import re

import numpy as np
import tensorflow as tf

from ffn.utils import errors

# Our checkpoints are `<train_dir>/model.ckpt-<step>`, as upstream's were.
CHECKPOINT_NAME = 'model.ckpt'
_OBJECT_GRAPH_KEY = '_CHECKPOINTABLE_OBJECT_GRAPH'

# The one table mapping our variable names ('<layer>/<leaf>') to upstream's TF1
# names ('seed_update/<layer>/<upstream leaf>'); layer names are shared.
_UPSTREAM_SCOPE = 'seed_update'
_UPSTREAM_LEAF = {'kernel': 'weights', 'bias': 'biases'}
_UPSTREAM_GLOBAL_STEP = 'global_step'


class CheckpointError(errors.FFNError):
  """A checkpoint that is missing, unreadable, or does not fit the model."""


def upstream_name(name: str) -> str:
  """Upstream's TF1 variable name for our model variable `name` ('conv0_a/kernel')."""
  layer, leaf = name.rsplit('/', 1)
  return f'{_UPSTREAM_SCOPE}/{layer}/{_UPSTREAM_LEAF[leaf]}'


def object_key(name: str, owner: str = 'model') -> str:
  """The key of variable `name` of `owner` ('model', 'optimizer') in our checkpoints."""
  return f'{owner}/{name}/.ATTRIBUTES/VARIABLE_VALUE'


def make_checkpoint(model, optimizer=None) -> tf.train.Checkpoint:
  """The checkpoint object that our training writes: model (with global_step) and optimizer."""
  if optimizer is None:
    return tf.train.Checkpoint(model=model)
  return tf.train.Checkpoint(model=model, optimizer=optimizer)


def make_manager(checkpoint: tf.train.Checkpoint, train_dir: str,
                 max_to_keep: int = 5,
                 keep_checkpoint_every_n_hours: float | None = 0.25
                 ) -> tf.train.CheckpointManager:
  """A manager writing `train_dir/model.ckpt-<step>` and the `checkpoint` index file."""
  return tf.train.CheckpointManager(
      checkpoint, train_dir, max_to_keep=max_to_keep,
      keep_checkpoint_every_n_hours=keep_checkpoint_every_n_hours,
      checkpoint_name=CHECKPOINT_NAME)


_STEP = re.compile(r'-(\d+)$')


def checkpoint_step(prefix: str) -> int | None:
  """The training step in a checkpoint prefix's name (`model.ckpt-<step>`), or None."""
  match = _STEP.search(os.fspath(prefix))
  return int(match.group(1)) if match else None


def latest_checkpoint(train_dir: str) -> str | None:
  """The prefix of the newest checkpoint in `train_dir`, or None."""
  return tf.train.latest_checkpoint(train_dir) if os.path.isdir(train_dir) else None


def resolve_checkpoint_path(path: str) -> str:
  """Returns the checkpoint prefix for a prefix, an .index/.data file, or a directory (latest)."""
  path = os.fspath(path)
  if os.path.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is None:
      raise CheckpointError(f'no checkpoint found in directory {path!r}')
    return latest
  for suffix in ('.index', '.data-00000-of-00001'):
    if path.endswith(suffix):
      path = path[:-len(suffix)]
  if not os.path.exists(path + '.index') and os.path.isfile(path):
    raise CheckpointError(f'{path!r} is a file but not a TensorFlow checkpoint: a checkpoint is '
                          f'a prefix with a {os.path.basename(path)}.index file beside it, '
                          'or a directory holding one')
  if not os.path.exists(path + '.index'):
    raise CheckpointError(f'checkpoint {path!r} does not exist (no {path}.index)')
  return path


def _open_reader(prefix: str):
  """Opens a checkpoint for reading, with a clear error for corrupt files."""
  try:
    return tf.train.load_checkpoint(prefix)
  except (tf.errors.OpError, ValueError) as e:
    raise CheckpointError(f'cannot read checkpoint {prefix!r}: {e}') from e


def is_object_based(prefix: str) -> bool:
  """Whether the checkpoint at `prefix` is one of ours (TF2 object-based)."""
  return _OBJECT_GRAPH_KEY in _open_reader(prefix).get_variable_to_shape_map()


# The keys of network weights (not the step, not optimizer state) in each format.
_OUR_WEIGHT = re.compile(r'^model/(?!global_step/)([^.]+)/\.ATTRIBUTES/VARIABLE_VALUE$')
_UPSTREAM_WEIGHT = re.compile(rf'^{_UPSTREAM_SCOPE}/[^/]+/(weights|biases)$')


def _tensor(reader, key: str, prefix: str) -> np.ndarray:
  """One stored tensor; CheckpointError naming the checkpoint when its data cannot be read."""
  try:
    return reader.get_tensor(key)
  except (tf.errors.OpError, IndexError, ValueError, RuntimeError) as e:
    raise CheckpointError(f'cannot read {key!r} from checkpoint {prefix!r}: the checkpoint is '
                          f'truncated or corrupt ({type(e).__name__}: '
                          f'{str(e).strip().splitlines()[0] if str(e).strip() else e})') from None


def read_model_values(model, prefix: str) -> tuple[dict[str, np.ndarray], int | None]:
  """Reads and checks the values of every model variable, and the global step, from `prefix`.

  The checkpoint must hold the model's variables with their shapes and no
  network weight the model lacks (a deeper network, say); CheckpointError
  names the first variable that differs.
  """
  reader = _open_reader(prefix)
  shapes = reader.get_variable_to_shape_map()
  ours = _OBJECT_GRAPH_KEY in shapes
  key_of = object_key if ours else upstream_name
  kind = 'TF2' if ours else 'upstream TF1'
  values = {}
  wanted = {}
  for name, var in model.named_variables().items():
    key = key_of(name)
    wanted[key] = name
    if key not in shapes:
      raise CheckpointError(
          f'{kind} checkpoint {prefix!r} has no variable {key!r} '
          f'(needed for model variable {name!r}); does the model match the checkpoint?')
    want = var.shape.as_list()
    if list(shapes[key]) != want:
      raise CheckpointError(
          f'variable {key!r} has shape {list(shapes[key])} in checkpoint {prefix!r} but the '
          f'model expects {want}; check model_args (depth, fov_size, features)')
  weight = _OUR_WEIGHT if ours else _UPSTREAM_WEIGHT
  extra = sorted(k for k in shapes if weight.match(k) and k not in wanted)
  if extra:
    raise CheckpointError(
        f'{kind} checkpoint {prefix!r} holds variable {extra[0]!r} (shape '
        f'{list(shapes[extra[0]])}), which the model does not have ({len(extra)} such); it '
        'belongs to another model: check model_name and model_args (depth, features)')
  for key, name in wanted.items():
    values[name] = _tensor(reader, key, prefix)
  if ours:
    _tensor(reader, _OBJECT_GRAPH_KEY, prefix)  # Stored last: a cut file loses it first.
  step_key = object_key('global_step') if ours else _UPSTREAM_GLOBAL_STEP
  step = int(_tensor(reader, step_key, prefix)) if step_key in shapes else None
  return values, step


def check_optimizer_state(optimizer, prefix: str) -> None:
  """Raises CheckpointError unless our checkpoint at `prefix` holds just this optimizer's state."""
  shapes = _open_reader(prefix).get_variable_to_shape_map()
  saved = sorted(k[len('optimizer/'):-len('/.ATTRIBUTES/VARIABLE_VALUE')] for k in shapes
                 if k.startswith('optimizer/') and k.endswith('/.ATTRIBUTES/VARIABLE_VALUE'))
  wanted = sorted(optimizer.state_names())
  if saved != wanted:
    missing = sorted(set(wanted) - set(saved))
    extra = sorted(set(saved) - set(wanted))
    detail = (f'it lacks {missing[0]!r}' if missing else '') + (
        ' and ' if missing and extra else '') + (f'it holds {extra[0]!r}' if extra else '')
    raise CheckpointError(
        f'checkpoint {prefix!r} holds the state of another optimizer than --optimizer '
        f'{optimizer.config.optimizer} ({detail}); resume with the optimizer it was trained '
        'with, or start a new --train_dir')


def load_weights(model, path: str) -> int | None:
  """Loads only the network weights from our or upstream's checkpoint; returns its stored step.

  The model's global step is left as it is (a fresh run starting from
  pretrained weights stays at its own step).
  """
  prefix = resolve_checkpoint_path(path)
  values, step = read_model_values(model, prefix)
  for name, var in model.named_variables().items():
    var.assign(values[name])
  return step


def restore_model(model, path: str) -> int | None:
  """Loads model weights from our or upstream's checkpoint at `path`; returns its global step."""
  step = load_weights(model, path)
  if step is not None:
    model.global_step.assign(step)
  return step
