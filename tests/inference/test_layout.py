"""The inference package's imports: no cycle, no use of its compatibility modules, no protos
in the Canvas or movement code."""

from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / 'ffn' / 'inference'
# Kept for upstream code only; nothing in the package may import them.
COMPAT_MODULES = {'inference', 'storage'}


def _imports() -> dict[str, set[str]]:
  """module -> the ffn.inference modules it imports (anywhere in its body)."""
  graph = {}
  for path in PACKAGE.glob('*.py'):
    deps = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.ImportFrom) and node.module == 'ffn.inference':
        deps |= {alias.name for alias in node.names}
      elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('ffn.inference.'):
        deps.add(node.module.split('.')[2])
      elif isinstance(node, ast.Import):
        deps |= {a.name.split('.')[2] for a in node.names if a.name.startswith('ffn.inference.')}
    graph[path.stem] = deps
  return graph


def test_no_module_imports_the_compat_modules():
  graph = _imports()
  assert {'canvas', 'runner', 'plan', 'results', 'storage', 'inference'} <= set(graph)
  users = {m: deps & COMPAT_MODULES for m, deps in graph.items()
           if deps & COMPAT_MODULES and m not in COMPAT_MODULES}
  assert not users


def test_no_import_cycle():
  graph = _imports()
  done, active = set(), []

  def visit(module):
    assert module not in active, f'import cycle: {" -> ".join(active + [module])}'
    if module in done:
      return
    active.append(module)
    for dep in graph.get(module, ()):
      visit(dep)
    active.pop()
    done.add(module)

  for module in graph:
    visit(module)


def test_canvas_and_movement_never_see_protos():
  graph = _imports()
  for module in ('canvas', 'movement', 'canvas_checkpoint', 'seed'):
    assert 'inference_pb2' not in graph[module], module
