"""Whether a train_dir may be resumed with a run's settings: same model, same optimizer.

Every run of train.py records its flags in `<train_dir>/flags.<unixtime>`
(absl's flag-file format, one `--name=value` per line), as upstream's does.
A run that would resume a checkpoint compares its model (`model_name`, and
`model_args` with the model's defaults filled in) and `optimizer` with the
newest of those files: the checkpoint's weights only mean something for the
model and field of view they were trained with (fov_size and deltas change
no variable shape, so the checkpoint alone cannot tell).
"""

from __future__ import annotations

import glob
import inspect
import os
from typing import Any, Optional

from ffn.training import import_util
from ffn.utils import errors

_COMPARED = ('model_name', 'model_args', 'optimizer')


class ResumeError(errors.FFNError):
  """A train_dir holds the checkpoints of a run with other model or optimizer settings."""


def newest_flags_file(train_dir: str) -> Optional[str]:
  """The flags file of the latest run in `train_dir`, or None."""
  files = []
  for path in glob.glob(os.path.join(glob.escape(train_dir), 'flags.*')):
    stamp = os.path.basename(path)[len('flags.'):]
    if stamp.isdigit():
      files.append((int(stamp), path))
  return max(files)[1] if files else None


def read_flags_file(path: str) -> dict[str, str]:
  """The `--name=value` lines of an absl flag file; a bare `--flag` (a boolean) reads as 'true'."""
  values = {}
  with open(path, encoding='utf-8', errors='replace') as f:
    for line in f:
      line = line.rstrip('\n')
      if not line.startswith('--'):
        continue
      name, sep, value = line[2:].partition('=')
      values[name] = value if sep else 'true'
  return values


def model_arguments(model_name: str, model_args: Any) -> dict[str, Any]:
  """The model's constructor arguments, defaults filled in (batch_size left out)."""
  cls = import_util.import_symbol(model_name)
  kwargs = import_util.parse_model_args(model_args)
  kwargs.pop('batch_size', None)
  try:
    bound = inspect.signature(cls).bind_partial(**kwargs)
  except TypeError:
    return kwargs  # build_model reports what does not fit.
  bound.apply_defaults()
  return {k: v for k, v in bound.arguments.items() if k not in ('batch_size', 'kwargs')}


def check_settings(train_dir: str, model_name: str, model_args: Any, optimizer: str) -> None:
  """Raises ResumeError unless the newest run in `train_dir` used these settings.

  Call it only when a checkpoint will be resumed. A train_dir without a flags
  file (checkpoints copied in by hand) cannot be checked and passes.
  """
  path = newest_flags_file(train_dir)
  if path is None:
    return
  saved = read_flags_file(path)
  if 'model_name' not in saved:
    return
  try:
    before = {'model_name': saved['model_name'],
              'model_args': model_arguments(saved['model_name'], saved.get('model_args')),
              'optimizer': saved.get('optimizer', 'sgd')}
  except errors.FFNError:
    before = {'model_name': saved['model_name'], 'model_args': saved.get('model_args'),
              'optimizer': saved.get('optimizer', 'sgd')}
  now = {'model_name': model_name, 'model_args': model_arguments(model_name, model_args),
         'optimizer': optimizer}
  for name in _COMPARED:
    if before[name] != now[name]:
      if name == 'model_args':
        keys = sorted(k for k in set(before[name]) | set(now[name])
                      if before[name].get(k) != now[name].get(k)) if isinstance(
                          before[name], dict) else []
        detail = '; '.join(f'{k}: {before[name].get(k)!r} there, {now[name].get(k)!r} now'
                           for k in keys) or f'{before[name]!r} there'
      else:
        detail = f'{before[name]!r} there, {now[name]!r} now'
      raise ResumeError(
          f'--train_dir {train_dir} holds checkpoints of a run with another --{name} '
          f'({errors.cut(detail)}; see {path}); resuming would mix the two. Use the settings '
          'of that run, or a new --train_dir')
