"""Finding a class by its name, checking its keyword arguments, and reading JSON objects.

A name from a flag or a request (`module.Symbol`, `package.module.Symbol`) is
looked up under the caller's default packages first, then as a full path. A
module is imported only once its source is seen to bind the symbol at its top
level (a class, function, assignment or import of that name; a `*` import or
a module `__getattr__` may bind anything): a name never imports a module just
to find out that it has no such symbol. Modules already imported are looked
at directly.

A class named in a request (`seed_policy`, `movement_policy_name`) is an
attribute of the module the field belongs to, or a dotted `module.Class` path
(looked up under `ffn.inference` first). Its arguments are checked against its
constructor before any work: every key must be a parameter it takes, every
parameter without a default must be given, and values must have the type the
parameter is annotated with (int, float, bool, str) and lie in the class's
`ARGUMENT_RANGES`.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import inspect
import json
import numbers
import sys
import types
from typing import Any, Collection, Mapping, Optional, Sequence

from ffn.utils import checks
from ffn.utils import errors


def _find_spec(name: str) -> Optional[importlib.machinery.ModuleSpec]:
  """The spec of module `name`, found without importing it or any package with code above it."""
  if name in sys.modules:
    return getattr(sys.modules[name], '__spec__', None)
  parent, _, _ = name.rpartition('.')
  try:
    if not parent:
      return importlib.util.find_spec(name)
    if parent not in sys.modules:
      parent_spec = _find_spec(parent)
      if parent_spec is None or parent_spec.submodule_search_locations is None:
        return None
      if parent_spec.origin not in (None, 'namespace'):
        return importlib.machinery.PathFinder.find_spec(
            name, list(parent_spec.submodule_search_locations))
      # A namespace package has no code of its own: importing it runs nothing.
      importlib.import_module(parent)
    locations = getattr(sys.modules[parent], '__path__', None)
    if locations is None:
      return None
    return importlib.machinery.PathFinder.find_spec(name, list(locations))
  except (ImportError, ValueError):
    return None


def _top_level_statements(body: list) -> list:
  """The module's statements, with those inside top-level if/try/with blocks."""
  found = []
  for node in body:
    found.append(node)
    if isinstance(node, (ast.If, ast.Try, ast.With)):
      for block in ('body', 'orelse', 'finalbody'):
        found.extend(_top_level_statements(getattr(node, block, [])))
      for handler in getattr(node, 'handlers', []):
        found.extend(_top_level_statements(handler.body))
  return found


def _bound_names(node) -> set[str]:
  """The names a top-level statement binds ('*' for a star import)."""
  if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
    return {node.name}
  if isinstance(node, (ast.Import, ast.ImportFrom)):
    return {alias.asname or alias.name.split('.')[0] for alias in node.names}
  targets = []
  if isinstance(node, ast.Assign):
    targets = node.targets
  elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
    targets = [node.target]
  names = set()
  for target in targets:
    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
  return names


def source_binds(spec: importlib.machinery.ModuleSpec, symbol: str) -> bool:
  """Whether the Python source of `spec` may bind `symbol` at its top level (never imports it)."""
  origin = spec.origin or ''
  if not origin.endswith('.py'):
    return False  # A namespace package or compiled module: nothing to read.
  try:
    with open(origin, 'rb') as f:
      tree = ast.parse(f.read(), filename=origin)
  except (OSError, SyntaxError, ValueError):
    return True  # Importing it then reports what is wrong with it.
  names = set().union(*(_bound_names(n) for n in _top_level_statements(tree.body)))
  return symbol in names or '*' in names or '__getattr__' in names


def import_symbol(name: str, default_packages: Sequence[str] = (), what: str = 'name') -> Any:
  """`module.Symbol` looked up under each of `default_packages` first, then as a full path.

  `what` names the setting in errors (e.g. "model").
  """
  if not isinstance(name, str) or '.' not in name.strip('.'):
    raise errors.FFNError(f'{what} {errors.shown(name)} must be [package.]module.Symbol')
  module_name, symbol = name.rsplit('.', 1)
  failures = []
  for candidate in [f'{p}.{module_name}' for p in default_packages] + [module_name]:
    module = sys.modules.get(candidate)
    if module is None:
      spec = _find_spec(candidate)
      if spec is None:
        failures.append(f'no module {errors.shown(candidate)}')
        continue
      if not source_binds(spec, symbol):
        failures.append(f'module {errors.shown(candidate)} has no {errors.shown(symbol)}')
        continue
      module = importlib.import_module(candidate)
    if hasattr(module, symbol):
      return getattr(module, symbol)
    failures.append(f'module {candidate!r} has no {symbol!r}')
  raise errors.FFNError(f'unknown {what} {errors.shown(name)}: '
                        + errors.cut('; '.join(failures), errors.MAX_LINE_CHARS // 2))


def parse_json_object(text: Optional[str | dict], what: str,
                      example: str = '') -> dict[str, Any]:
  """The dict of a JSON-object setting named `what` (empty or None gives {})."""
  if text is None or (isinstance(text, str) and not text.strip()):
    return {}
  if isinstance(text, dict):
    return dict(text)
  try:
    parsed = json.loads(text)
  except (json.JSONDecodeError, RecursionError) as e:
    raise errors.FFNError(f'{what} {errors.shown(text)} is not valid JSON: {e}') from e
  if not isinstance(parsed, dict):
    hint = f', e.g. {example}' if example else ''
    raise errors.FFNError(f'{what} {errors.shown(text)} must be a JSON object{hint}')
  return parsed



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
      cls = import_symbol(name, ('ffn.inference',), what=field)
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
