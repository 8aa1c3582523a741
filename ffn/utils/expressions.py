"""Coordinate expressions (`x > 10 & y < z`) evaluated from a parse tree, never by `eval`.

Mask configs carry a Python-like expression over the voxel coordinates x, y
and z. Only arithmetic, comparisons, boolean and bitwise operators, numeric
constants, the names x, y, z and a fixed set of numpy functions (called as
`np.f(...)`, `numpy.f(...)` or `f(...)`) are evaluated; anything else
(attributes, subscripts, lambdas, other names) is refused before any of it runs.
"""

from __future__ import annotations

import ast
import operator
from typing import Any, Callable, Mapping

import numpy as np

from ffn.utils import errors


class ExpressionError(errors.FFNError):
  """An expression uses something outside the admitted grammar, or cannot be evaluated."""


MAX_LENGTH = 10_000

FUNCTIONS: dict[str, Callable] = {
    name: getattr(np, name) for name in (
        'abs', 'absolute', 'sqrt', 'square', 'exp', 'log', 'log2', 'log10', 'sin', 'cos',
        'tan', 'arcsin', 'arccos', 'arctan', 'arctan2', 'hypot', 'floor', 'ceil', 'round',
        'rint', 'trunc', 'sign', 'minimum', 'maximum', 'clip', 'where', 'mod', 'fmod',
        'logical_and', 'logical_or', 'logical_not', 'logical_xor', 'isfinite', 'isnan')
}
FUNCTIONS['min'] = np.minimum
FUNCTIONS['max'] = np.maximum

_NUMPY_MODULES = ('np', 'numpy')

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow, ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}
_UNARY = {
    ast.UAdd: operator.pos, ast.USub: operator.neg, ast.Invert: operator.invert,
    ast.Not: np.logical_not,
}
_COMPARE = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}


def _function(node: ast.expr, expression: str) -> Callable:
  """The admitted numpy function a call node names."""
  if isinstance(node, ast.Name) and node.id in FUNCTIONS:
    return FUNCTIONS[node.id]
  if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
      and node.value.id in _NUMPY_MODULES and node.attr in FUNCTIONS):
    return FUNCTIONS[node.attr]
  raise ExpressionError(
      f'coordinate expression {expression!r} calls {ast.unparse(node)!r}; only these '
      f'functions are allowed: {", ".join(sorted(FUNCTIONS))}')


class _Evaluator:
  """Walks a parsed expression, evaluating the admitted node types only."""

  def __init__(self, expression: str, names: Mapping[str, Any]):
    self.expression = expression
    self.names = names

  def refuse(self, node: ast.AST) -> ExpressionError:
    what = ast.unparse(node) if isinstance(node, ast.expr) else type(node).__name__
    return ExpressionError(
        f'coordinate expression {self.expression!r} uses {what!r} '
        f'({type(node).__name__}); only arithmetic, comparisons, boolean operators, '
        f'numbers, the names {", ".join(sorted(self.names))} and numpy functions are allowed')

  def __call__(self, node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
      return self(node.body)
    if isinstance(node, ast.Constant):
      if isinstance(node.value, bool):
        return np.bool_(node.value)
      if isinstance(node.value, int):
        # numpy ints overflow instead of growing without bound (10**10**10 would hang).
        return np.int64(node.value) if abs(node.value) < 2**63 else np.float64(node.value)
      if isinstance(node.value, float):
        return np.float64(node.value)
      raise self.refuse(node)
    if isinstance(node, ast.Name):
      if node.id in self.names:
        return self.names[node.id]
      raise self.refuse(node)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
      return _BINARY[type(node.op)](self(node.left), self(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
      return _UNARY[type(node.op)](self(node.operand))
    if isinstance(node, ast.BoolOp):
      combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
      result = self(node.values[0])
      for value in node.values[1:]:
        result = combine(result, self(value))
      return result
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
      left = self(node.left)
      result = None
      for op, right_node in zip(node.ops, node.comparators):
        right = self(right_node)
        part = _COMPARE[type(op)](left, right)
        result = part if result is None else np.logical_and(result, part)
        left = right
      return result
    if isinstance(node, ast.Call) and not node.keywords:
      function = _function(node.func, self.expression)
      return function(*(self(arg) for arg in node.args))
    raise self.refuse(node)


def evaluate(expression: str, names: Mapping[str, Any]) -> Any:
  """The value of `expression` with `names` bound; raises ExpressionError for anything else."""
  if not isinstance(expression, str) or not expression.strip():
    raise ExpressionError(f'coordinate expression must be a non-empty string, got {expression!r}')
  if len(expression) > MAX_LENGTH:
    raise ExpressionError(f'coordinate expression is {len(expression)} characters long; '
                          f'at most {MAX_LENGTH} are allowed')
  try:
    tree = ast.parse(expression.strip(), mode='eval')
  except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
    raise ExpressionError(f'coordinate expression {expression!r} is not valid: '
                          f'{getattr(e, "msg", e)}') from None
  try:
    with np.errstate(all='ignore'):
      return _Evaluator(expression, names)(tree)
  except ExpressionError:
    raise
  except (ArithmeticError, ValueError, TypeError, RecursionError, MemoryError) as e:
    raise ExpressionError(f'cannot evaluate coordinate expression {expression!r}: '
                          f'{type(e).__name__}: {e}') from None
