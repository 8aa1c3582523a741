"""Finds a model class by name and builds it from JSON constructor arguments."""

from __future__ import annotations

import importlib
import inspect
import json
from typing import Any

# Short names such as `convstack_3d.ConvStack3DFFNModel` are looked up here first.
DEFAULT_MODEL_PACKAGE = 'ffn.training.models'


def import_symbol(name: str, default_package: str = DEFAULT_MODEL_PACKAGE) -> Any:
  """Returns `module.Symbol` from `default_package` if it is there, else as a full dotted path."""
  if not isinstance(name, str) or '.' not in name.strip('.'):
    raise ValueError(f'model name {name!r} must be [package.]module.Class, '
                     'e.g. convstack_3d.ConvStack3DFFNModel')
  module_name, symbol = name.rsplit('.', 1)
  errors = []
  for candidate in (f'{default_package}.{module_name}', module_name):
    try:
      module = importlib.import_module(candidate)
    except ModuleNotFoundError as e:
      # Only a missing candidate module means "try the next one"; a module that
      # exists but fails to import is a real error and propagates.
      if e.name is not None and candidate.startswith(e.name):
        errors.append(f'no module {candidate!r}')
        continue
      raise
    if hasattr(module, symbol):
      return getattr(module, symbol)
    errors.append(f'module {candidate!r} has no {symbol!r}')
  raise ValueError(f'unknown model {name!r}: ' + '; '.join(errors))


def parse_model_args(model_args: str | dict | None) -> dict[str, Any]:
  """Parses the JSON object of model constructor arguments."""
  if model_args is None or (isinstance(model_args, str) and not model_args.strip()):
    return {}
  if isinstance(model_args, dict):
    return dict(model_args)
  try:
    parsed = json.loads(model_args)
  except json.JSONDecodeError as e:
    raise ValueError(f'model_args {model_args!r} is not valid JSON: {e}') from e
  if not isinstance(parsed, dict):
    raise ValueError(f'model_args {model_args!r} must be a JSON object, '
                     'e.g. {"depth": 12, "fov_size": [33, 33, 33], "deltas": [8, 8, 8]}')
  return parsed


def build_model(model_name: str, model_args: str | dict | None, **overrides):
  """Builds the model class named `model_name` from JSON `model_args` plus `overrides`."""
  model_cls = import_symbol(model_name)
  kwargs = parse_model_args(model_args)
  kwargs.update(overrides)
  try:
    inspect.signature(model_cls).bind(**kwargs)
  except TypeError as e:
    raise ValueError(f'model_args {kwargs!r} do not fit {model_name}'
                     f'{inspect.signature(model_cls)}: {e}') from e
  try:
    return model_cls(**kwargs)
  except (TypeError, ValueError) as e:
    raise ValueError(f'model_args {kwargs!r} do not fit {model_name}: {e}') from e
