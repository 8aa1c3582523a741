"""The one place where xyz (flags, protos, BoundingBox) becomes zyx (numpy arrays) and back."""

from __future__ import annotations

from typing import Sequence

# A position or size in array order.
ZYX = Sequence[int]
Position = tuple[int, int, int]


def xyz_to_zyx(values: Sequence) -> tuple:
  """The zyx tuple of an xyz sequence."""
  return tuple(values)[::-1]


def zyx_to_xyz(values: Sequence) -> tuple:
  """The xyz tuple of a zyx sequence."""
  return tuple(values)[::-1]

