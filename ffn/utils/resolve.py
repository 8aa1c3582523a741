"""Finding a class by its name, and reading JSON-object arguments: the one place for each.

A name from a flag or a request (`module.Symbol`, `package.module.Symbol`) is
looked up under the caller's default packages first, then as a full path. A
module is imported only once its source is seen to bind the symbol at its top
level (a class, function, assignment or import of that name; a `*` import or
a module `__getattr__` may bind anything): a name never imports a module just
to find out that it has no such symbol. Modules already imported are looked
at directly.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import json
import sys
from typing import Any, Optional, Sequence

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
