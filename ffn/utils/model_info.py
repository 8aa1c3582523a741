"""The geometry of one FFN model step (sizes in xyz), known without TensorFlow."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from ffn.utils import errors


@dataclasses.dataclass(frozen=True)
class ModelInfo:
  """Geometry of one model step; every size is an xyz tuple."""
  deltas: tuple[int, int, int]
  pred_mask_size: tuple[int, int, int]
  input_seed_size: tuple[int, int, int]
  input_image_size: tuple[int, int, int]
  additive: bool = False


def as_xyz(values: Sequence[int], what: str) -> tuple[int, int, int]:
  """Checks and converts a 3-vector of non-negative ints given in xyz order."""
  try:
    out = tuple(int(v) for v in values)
  except (TypeError, ValueError) as e:
    raise errors.FFNError(f'{what} must be 3 integers (x, y, z), got {values!r}') from e
  if len(out) != 3 or any(v < 0 for v in out) or any(
      float(v) != float(w) for v, w in zip(out, values)):
    raise errors.FFNError(f'{what} must be 3 non-negative integers (x, y, z), got {values!r}')
  return out
