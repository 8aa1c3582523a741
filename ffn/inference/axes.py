"""Axis conventions of the inference package: positions and boxes are zyx.

Protos, flags and BoundingBox are xyz; `zyx` is the one place here that turns
an xyz triple into a zyx array.
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
