"""The one place where xyz (flags, protos, BoundingBox) becomes zyx (numpy arrays) and back."""

from __future__ import annotations

from typing import Sequence

import numpy as np

# A position or size in array order.
ZYX = Sequence[int]
Position = tuple[int, int, int]


def xyz_to_zyx(values: Sequence) -> tuple:
  """The zyx tuple of an xyz sequence."""
  return tuple(values)[::-1]


def zyx_to_xyz(values: Sequence) -> tuple:
  """The xyz tuple of a zyx sequence."""
  return tuple(values)[::-1]



def zyx(xyz_values: Sequence[int]) -> np.ndarray:
  """The int64 zyx array of an xyz triple."""
  return np.asarray(xyz_values, dtype=np.int64)[::-1].copy()


def xyz(zyx_values: Sequence[int]) -> tuple[int, ...]:
  """The xyz tuple of ints of a zyx triple (for messages and protos)."""
  return tuple(int(v) for v in zyx_values)[::-1]


def points_zyx(points_xyz, corner_zyx: Sequence[int] = (0, 0, 0)) -> np.ndarray:
  """(N, 3) int64 zyx positions, relative to `corner_zyx`, of points whose first 3 columns are xyz."""
  points = np.asarray(points_xyz, np.int64).reshape(len(points_xyz), -1)
  return points[:, 2::-1] - np.asarray(corner_zyx, np.int64)


def zyx_triple(values: Sequence[int]) -> Position:
  """`values` as a zyx tuple of three ints; ValueError unless there are three."""
  values = tuple(int(v) for v in values)
  if len(values) != 3:
    raise ValueError(f'expected 3 (z, y, x) values, got {values!r}')
  return values
