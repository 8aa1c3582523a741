"""Conversions between Vector3j protos, tuples and numpy 3-vectors."""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from ffn.utils import vector_pb2


def to_vector3j(value: Union[Sequence[int], np.ndarray, vector_pb2.Vector3j]) -> vector_pb2.Vector3j:
  """A Vector3j proto from an xyz triple or another Vector3j."""
  if isinstance(value, vector_pb2.Vector3j):
    return value
  x, y, z = to_3tuple(value)
  return vector_pb2.Vector3j(x=x, y=y, z=z)


def to_3tuple(value) -> tuple[int, int, int]:
  """An (x, y, z) tuple of ints from a 3-sequence or Vector3j; ValueError otherwise."""
  if isinstance(value, vector_pb2.Vector3j):
    return (value.x, value.y, value.z)
  values = list(np.asarray(value).ravel()) if isinstance(value, np.ndarray) else list(value)
  if len(values) != 3:
    raise ValueError(f'expected 3 integers (x, y, z), got {value!r}')
  out = []
  for v in values:
    if int(v) != v:
      raise ValueError(f'expected integers, got {value!r}')
    out.append(int(v))
  return tuple(out)


def to_numpy3_vector(value) -> np.ndarray:
  """An int64 numpy 3-vector (xyz) from a 3-sequence or Vector3j."""
  return np.array(to_3tuple(value), dtype=np.int64)


# Upstream's CamelCase names, kept for code written against google/ffn.
ToVector3j = to_vector3j
To3Tuple = to_3tuple
ToNumpy3Vector = to_numpy3_vector
