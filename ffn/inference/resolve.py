"""Request values given by name: classes looked up by name and JSON-object arguments."""

from __future__ import annotations

import json
import types

from ffn.training import import_util


def json_object(text: str, field: str) -> dict:
  """Parses the JSON object in a request field; empty text means no arguments."""
  if not text:
    return {}
  try:
    parsed = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f'{field} is not valid JSON: {text!r} ({e})') from e
  if not isinstance(parsed, dict):
    raise ValueError(f'{field} must be a JSON object, got {text!r}')
  return parsed


def _subclasses(module: types.ModuleType, base: type) -> list[str]:
  return sorted(name for name, value in vars(module).items()
                if isinstance(value, type) and issubclass(value, base) and value is not base)


def resolve_class(name: str, module: types.ModuleType, base: type, field: str) -> type:
  """The subclass of `base` named `name` in `module`, or at a dotted `module.Class` path."""
  if '.' in name:
    try:
      cls = import_util.import_symbol(name, default_package='ffn.inference')
    except (ImportError, ValueError) as e:
      raise ValueError(f'{field} {name!r} cannot be imported: {e}') from e
  else:
    cls = getattr(module, name, None)
  if not (isinstance(cls, type) and issubclass(cls, base)):
    raise ValueError(f'{field} {name!r} is not a {base.__name__}; expected one of '
                     f'{_subclasses(module, base)} or a dotted module.Class path')
  return cls
