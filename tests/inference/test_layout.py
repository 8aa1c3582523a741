"""The inference package's imports: no cycle, no project module using upstream's facades, no
protos in the growing or policy code."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / 'ffn' / 'inference'
# Upstream's import paths, kept for code written against upstream: nothing of ours imports them.
FACADES = {'ffn.inference.inference', 'ffn.inference.storage', 'ffn.inference.movement',
           'ffn.inference.seed', 'ffn.inference.executor', 'ffn.inference.segmentation',
           'ffn.inference.align', 'ffn.inference.consensus', 'ffn.inference.resegmentation',
           'ffn.inference.runner'}


def _module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(ROOT).with_suffix('').parts)
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob('*.py')}


def _imports(path: pathlib.Path) -> set[str]:
  """The ffn.inference modules `path` imports (anywhere in its body)."""
  deps = set()
  for node in ast.walk(ast.parse(path.read_text())):
    names = []
    if isinstance(node, ast.ImportFrom) and node.module:
      names = [f'{node.module}.{a.name}' for a in node.names] + [node.module]
    elif isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    for name in names:
      if name in MODULES and name.startswith('ffn.inference'):
        deps.add(name)
  return deps - {'ffn.inference'}


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def test_the_layout_is_as_documented():
  for package in ('growing', 'policies', 'engines', 'request', 'io', 'pipelines'):
    assert f'ffn.inference.{package}' in MODULES, package
  assert FACADES <= set(MODULES)


def test_no_project_module_imports_a_facade():
  for root in ('ffn', 'tests', 'bench'):
    for path in (ROOT / root).rglob('*.py'):
      name = _module_name(path) if root == 'ffn' else str(path)
      if name in FACADES or path.name == 'test_upstream_imports.py':
        continue
      used = {n for n in _imports_any(path) if n in FACADES}
      assert not used, f'{path.relative_to(ROOT)} imports {sorted(used)}'


def _imports_any(path: pathlib.Path) -> set[str]:
  """Every dotted ffn module name `path` imports, by `import` or `from ... import`."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module:
      found.add(node.module)
      found |= {f'{node.module}.{a.name}' for a in node.names}
    elif isinstance(node, ast.Import):
      found |= {a.name for a in node.names}
  return found


def test_no_import_cycle():
  done, active = set(), []

  def visit(module):
    assert module not in active, f'import cycle: {" -> ".join(active + [module])}'
    if module in done:
      return
    active.append(module)
    for dep in GRAPH.get(module, ()):
      visit(dep)
    active.pop()
    done.add(module)

  for module in GRAPH:
    visit(module)


def test_growing_and_policies_never_see_protos():
  for name in GRAPH:
    if name.startswith(('ffn.inference.growing', 'ffn.inference.policies')):
      assert 'ffn.inference.inference_pb2' not in GRAPH[name], name
