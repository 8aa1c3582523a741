"""Every import inside `ffn/` points down the layers, and no modules import each other in a cycle.

Layers, lowest first: utils < training < inference < analysis, blockwise < scripts.
Imports inside functions count as much as those at the top of a module.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = REPO_ROOT / 'ffn'
LAYERS = {'utils': 0, 'training': 1, 'inference': 2, 'analysis': 3, 'blockwise': 3,
          'scripts': 4}
# A cycle the Canvas/Runner split removes; empty this once it has landed.
KNOWN_CYCLES: set = set()


def _modules() -> dict[str, pathlib.Path]:
  """Module name -> file, for every module of the package."""
  result = {}
  for path in sorted(PACKAGE.rglob('*.py')):
    parts = list(path.relative_to(REPO_ROOT).with_suffix('').parts)
    if parts[-1] == '__init__':
      parts = parts[:-1]
    result['.'.join(parts)] = path
  return result


MODULES = _modules()


def _layer(module: str) -> int:
  """The layer of a module: that of its folder under ffn/ (the package root is ground)."""
  parts = module.split('.')
  if len(parts) < 2 or parts[1] not in LAYERS:
    if len(parts) >= 2 and (PACKAGE / parts[1]).is_dir():
      raise AssertionError(f'{module} is in a folder with no layer; add it to LAYERS')
    return 0
  return LAYERS[parts[1]]


def _imports(path: pathlib.Path, module: str) -> set[str]:
  """The ffn modules `path` imports, anywhere in it (a name imported from a package counts
  as its submodule when there is one)."""
  tree = ast.parse(path.read_text(), str(path))
  package = module if path.name == '__init__.py' else module.rpartition('.')[0]
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        anchor = package.split('.')[:len(package.split('.')) - node.level + 1]
        base = '.'.join(anchor + ([base] if base else []))
      names = [f'{base}.{alias.name}' if f'{base}.{alias.name}' in MODULES else base
               for alias in node.names]
    else:
      continue
    for name in names:
      while name and name not in MODULES:
        name = name.rpartition('.')[0]
      if name.startswith('ffn') and name != module and name != 'ffn':
        found.add(name)
  return found


GRAPH = {module: _imports(path, module) for module, path in MODULES.items()}


def test_every_folder_has_a_layer():
  for folder in PACKAGE.iterdir():
    if folder.is_dir() and (folder / '__init__.py').exists():
      assert folder.name in LAYERS, f'ffn/{folder.name} has no layer'


def test_no_import_points_up():
  upward = [f'{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})'
            for module, targets in GRAPH.items() for target in sorted(targets)
            if _layer(target) > _layer(module)]
  assert not upward, '\n'.join(upward)


def _cycles() -> list[list[str]]:
  """The strongly connected components of more than one module (Tarjan)."""
  index, low, on_stack, stack, components = {}, {}, set(), [], []

  def visit(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for target in GRAPH.get(node, ()):
      if target not in index:
        visit(target)
        low[node] = min(low[node], low[target])
      elif target in on_stack:
        low[node] = min(low[node], index[target])
    if low[node] == index[node]:
      component = []
      while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
          break
      if len(component) > 1:
        components.append(sorted(component))

  for node in sorted(GRAPH):
    if node not in index:
      visit(node)
  return components


def test_no_import_cycles():
  cycles = [c for c in _cycles() if frozenset(c) not in KNOWN_CYCLES]
  assert not cycles, f'modules importing each other: {cycles}'


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
  fake = tmp_path / 'fake.py'
  fake.write_text('def f():\n  from ffn.inference import storage\n  from . import cli\n'
                  '  import ffn.training.model\n')
  assert _imports(fake, 'ffn.utils.fake') == {
      'ffn.inference.storage', 'ffn.utils.cli', 'ffn.training.model'}


@pytest.mark.parametrize('module', ['ffn.training.partitions', 'ffn.training.examples'])
def test_training_data_preparation_does_not_import_inference(module):
  assert not {t for t in GRAPH[module] if t.startswith('ffn.inference')}
