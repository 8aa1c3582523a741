"""Finds a model class by name and builds it from JSON constructor arguments."""

from __future__ import annotations

import inspect
from typing import Any

from ffn.utils import errors
from ffn.utils import resolve

# Short names such as `convstack_3d.ConvStack3DFFNModel` are looked up here first.
DEFAULT_MODEL_PACKAGE = 'ffn.training.models'


def import_symbol(name: str, default_package: str = DEFAULT_MODEL_PACKAGE) -> Any:
  """Returns `module.Symbol` from `default_package` if it is there, else as a full dotted path."""
  if not isinstance(name, str) or '.' not in name.strip('.'):
    raise errors.FFNError(f'model name {name!r} must be [package.]module.Class, '
                          'e.g. convstack_3d.ConvStack3DFFNModel')
  return resolve.import_symbol(name, (default_package,), what='model')


def parse_model_args(model_args: str | dict | None) -> dict[str, Any]:
  """Parses the JSON object of model constructor arguments."""
  return resolve.parse_json_object(
      model_args, 'model_args', '{"depth": 12, "fov_size": [33, 33, 33], "deltas": [8, 8, 8]}')


def build_model(model_name: str, model_args: str | dict | None, **overrides):
  """Builds the model class named `model_name` from JSON `model_args` plus `overrides`."""
  model_cls = import_symbol(model_name)
  kwargs = parse_model_args(model_args)
  kwargs.update(overrides)
  try:
    inspect.signature(model_cls).bind(**kwargs)
  except TypeError as e:
    raise errors.FFNError(f'model_args {kwargs!r} do not fit {model_name}'
                     f'{inspect.signature(model_cls)}: {e}') from e
  try:
    return model_cls(**kwargs)
  except (TypeError, ValueError) as e:
    raise errors.FFNError(f'model_args {kwargs!r} do not fit {model_name}: {e}') from e
