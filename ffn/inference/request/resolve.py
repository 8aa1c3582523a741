"""Request values given by name: classes looked up by name, and their JSON-object arguments.

A class named in a request (`seed_policy`, `movement_policy_name`) is an
attribute of the module the field belongs to, or a dotted `module.Class` path
that `ffn.utils.resolve.import_symbol` finds (under `ffn.inference` first)
without importing modules that do not bind the class. Its arguments are
checked against its constructor before any work: every key must be a
parameter it takes, every parameter without a default must be given, and
values must have the type the parameter is annotated with (int, float, bool,
str) and lie in the class's `ARGUMENT_RANGES`.
"""

from __future__ import annotations

import inspect
import numbers
import types
from typing import Any, Collection, Mapping

from ffn.utils import checks
from ffn.utils import errors
from ffn.utils import resolve as resolve_lib


def json_object(text: str, field: str) -> dict:
  """Parses the JSON object in a request field; empty text means no arguments."""
  return resolve_lib.parse_json_object(text, field)


def _subclasses(module: types.ModuleType, base: type) -> list[str]:
  return sorted(name for name, value in vars(module).items()
                if isinstance(value, type) and issubclass(value, base) and value is not base
                and not name.startswith('_'))


def resolve_class(name: str, module: types.ModuleType, base: type, field: str) -> type:
  """The subclass of `base` named `name` in `module`, or at a dotted `module.Class` path."""
  if not isinstance(name, str) or not name:
    raise errors.FFNError(f'{field} {errors.shown(name)} is not a class name')
  if '.' in name:
    try:
      cls = resolve_lib.import_symbol(name, ('ffn.inference',), what=field)
    except (ImportError, ValueError) as e:
      raise errors.FFNError(f'{field} {errors.shown(name)} cannot be imported: {e}') from e
  else:
    cls = getattr(module, name, None)
  if not (isinstance(cls, type) and issubclass(cls, base)):
    raise errors.FFNError(f'{field} {errors.shown(name)} is not a {base.__name__}; expected one '
                          f'of {_subclasses(module, base)} or a dotted module.Class path')
  return cls


def constructor_parameters(cls: type, stop_at: type = object) -> dict[str, inspect.Parameter]:
  """The keyword parameters of `cls(canvas, ...)`, following `**kwargs` up the class chain.

  A constructor with `**kwargs` passes them to its base's; the chain ends at
  the first constructor without `**kwargs`, or at `stop_at` (whose `**kwargs`
  are for values its caller supplies).
  """
  found: dict[str, inspect.Parameter] = {}
  for klass in cls.__mro__:
    if '__init__' not in vars(klass):
      continue
    params = list(inspect.signature(klass.__init__).parameters.values())[2:]  # self, canvas
    for p in params:
      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
        found.setdefault(p.name, p)
    if klass is stop_at or not any(p.kind == p.VAR_KEYWORD for p in params):
      break
  return found


def _type_ok(value: Any, annotation: Any) -> bool:
  """Whether a JSON value fits a simple annotation ('int', 'float', 'bool', 'str'); others pass."""
  kind = annotation if isinstance(annotation, str) else getattr(annotation, '__name__', '')
  if kind == 'int':
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
  if kind == 'float':
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
  if kind == 'bool':
    return isinstance(value, bool)
  if kind == 'str':
    return isinstance(value, str)
  return True


def check_keywords(cls: type, kwargs: Mapping[str, Any], field: str,
                   supplied: Collection[str] = (), stop_at: type = object) -> None:
  """Raises FFNError unless `cls` takes exactly these keyword arguments (see module doc).

  `supplied` are the arguments the caller adds itself.
  """
  params = constructor_parameters(cls, stop_at)
  unknown = sorted(set(kwargs) - set(params))
  takes = sorted(set(params) - set(supplied))
  if unknown:
    raise errors.FFNError(f'{field} has {errors.shown(unknown[0])}, which {cls.__name__} does '
                          f'not take; it takes {takes}')
  missing = [n for n, p in params.items()
             if p.default is p.empty and n not in kwargs and n not in supplied]
  if missing:
    raise errors.FFNError(f'{field} lacks {missing[0]!r}, which {cls.__name__} needs')
  ranges: Mapping[str, checks.Range] = getattr(cls, 'ARGUMENT_RANGES', {})
  for name, value in kwargs.items():
    default = params[name].default
    if isinstance(default, (list, tuple)) and not isinstance(value, (list, tuple)):
      raise errors.FFNError(f'{field} {name!r} is {errors.shown(value)}; {cls.__name__} expects '
                            f'a list like {list(default)}')
    if not _type_ok(value, params[name].annotation):
      raise errors.FFNError(f'{field} {name!r} is {errors.shown(value)}; {cls.__name__} expects '
                            f'a {params[name].annotation}')
    if name in ranges:
      values = value if isinstance(value, (list, tuple)) else [value]
      checks.check_numbers(values, f'{field} {name!r}', ranges[name])
