"""Request values given by name: classes looked up by name and JSON-object arguments."""

from __future__ import annotations

import types

from ffn.utils import resolve as resolve_lib


def json_object(text: str, field: str) -> dict:
  """Parses the JSON object in a request field; empty text means no arguments."""
  return resolve_lib.parse_json_object(text, field)


def _subclasses(module: types.ModuleType, base: type) -> list[str]:
  return sorted(name for name, value in vars(module).items()
                if isinstance(value, type) and issubclass(value, base) and value is not base)


def resolve_class(name: str, module: types.ModuleType, base: type, field: str) -> type:
  """The subclass of `base` named `name` in `module`, or at a dotted `module.Class` path."""
  if '.' in name:
    try:
      cls = resolve_lib.import_symbol(name, ('ffn.inference',), what=field)
    except (ImportError, ValueError) as e:
      raise ValueError(f'{field} {name!r} cannot be imported: {e}') from e
  else:
    cls = getattr(module, name, None)
  if not (isinstance(cls, type) and issubclass(cls, base)):
    raise ValueError(f'{field} {name!r} is not a {base.__name__}; expected one of '
                     f'{_subclasses(module, base)} or a dotted module.Class path')
  return cls
