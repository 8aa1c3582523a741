"""Axis permutation and reflection, sampled once per example and shared by all its arrays."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from ffn.utils import errors


def check_axes(axes: Sequence[int], what: str) -> list[int]:
  """Validates zyx axis indices (a subset of 0, 1, 2)."""
  try:
    out = [int(a) for a in axes]
  except (TypeError, ValueError) as e:
    raise errors.FFNError(f'{what} must be a subset of 0,1,2 (z,y,x), got {axes!r}') from e
  if any(a not in (0, 1, 2) for a in out) or len(set(out)) != len(out):
    raise errors.FFNError(f'{what} must be a subset of 0,1,2 (z,y,x) without repeats, got {axes!r}')
  return out


def sample_transform(permutable_axes: Sequence[int], reflectable_axes: Sequence[int],
                     seed=None) -> tuple[tf.Tensor, tf.Tensor]:
  """Draws one transform: a permutation of the 3 zyx axes and a reflect flag per axis.

  Only `permutable_axes` move among themselves; each of `reflectable_axes` is
  reflected with probability 1/2.
  """
  permutable = tf.constant(sorted(permutable_axes), tf.int32)
  shuffled = tf.random.shuffle(permutable, seed=seed)
  permutation = tf.range(3, dtype=tf.int32)
  if permutable_axes:
    permutation = tf.tensor_scatter_nd_update(permutation, permutable[:, None], shuffled)
  coins = tf.random.uniform([3], seed=seed) > 0.5
  reflectable = tf.constant([a in reflectable_axes for a in range(3)])
  return permutation, tf.logical_and(coins, reflectable)


def apply_transform(x: tf.Tensor, permutation: tf.Tensor, reflect: tf.Tensor) -> tf.Tensor:
  """Transposes the zyx axes of `x` [z, y, x, c] by `permutation`, then reverses flagged axes."""
  x = tf.transpose(x, tf.concat([permutation, [3]], axis=0))
  for axis in range(3):
    x = tf.cond(reflect[axis], lambda x=x, a=axis: tf.reverse(x, [a]), lambda x=x: x)
  return x
