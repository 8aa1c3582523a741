"""Axis conventions of the inference package: positions and boxes are zyx.

Protos, flags and BoundingBox are xyz; `zyx` and `xyz` are the one place here
where a triple changes order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# A zyx triple (corner, size or position) as callers pass it.
ZYX = Sequence[int]
# A voxel position inside a canvas, zyx.
Position = tuple[int, int, int]


def zyx(xyz: Sequence[int]) -> np.ndarray:
  """The int64 zyx array of an xyz triple."""
  return np.asarray(xyz, dtype=np.int64)[::-1].copy()


def xyz(zyx_values: Sequence[int]) -> tuple[int, ...]:
  """The xyz tuple of a zyx triple (for messages and protos)."""
  return tuple(int(v) for v in zyx_values)[::-1]


def zyx_triple(values: Sequence[int]) -> Position:
  """`values` as a zyx tuple of three ints; ValueError unless there are three."""
  values = tuple(int(v) for v in values)
  if len(values) != 3:
    raise ValueError(f'expected 3 (z, y, x) values, got {values!r}')
  return values
