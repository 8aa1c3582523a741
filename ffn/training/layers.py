"""Building blocks for FFN models: a 3-D convolution owning its weights."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf


def glorot_uniform(shape: Sequence[int]) -> tf.Tensor:
  """Xavier/Glorot uniform values for a conv kernel [kd, kh, kw, in, out]."""
  receptive = int(np.prod(shape[:-2]))
  fan_in, fan_out = receptive * shape[-2], receptive * shape[-1]
  limit = np.sqrt(6.0 / (fan_in + fan_out))
  return tf.random.uniform(shape, -limit, limit, dtype=tf.float32)


class Conv3D(tf.Module):
  """A stride-1 SAME 3-D convolution with bias, Glorot-uniform weights and zero biases."""

  def __init__(self, in_channels: int, out_channels: int,
               kernel_size: Sequence[int] = (3, 3, 3), relu: bool = False,
               name: str | None = None):
    super().__init__(name=name)
    shape = list(kernel_size) + [in_channels, out_channels]
    # ONLY_FIRST_REPLICA: under a distribution strategy every replica applies the
    # same all-reduced update, so taking the first replica's value is exact.
    aggregation = tf.VariableAggregation.ONLY_FIRST_REPLICA
    self.kernel = tf.Variable(glorot_uniform(shape), name='kernel', aggregation=aggregation)
    self.bias = tf.Variable(tf.zeros([out_channels]), name='bias', aggregation=aggregation)
    self.relu = relu

  def __call__(self, x: tf.Tensor) -> tf.Tensor:
    """Convolves `x` [b, z, y, x, c] and adds the bias (then ReLU if configured).

    The float32 weights are cast to the dtype of `x` (a no-op for float32), so
    that a bfloat16 or float16 `x` computes in that precision.
    """
    kernel, bias = tf.cast(self.kernel, x.dtype), tf.cast(self.bias, x.dtype)
    y = tf.nn.conv3d(x, kernel, strides=[1, 1, 1, 1, 1], padding='SAME')
    y = tf.nn.bias_add(y, bias)
    return tf.nn.relu(y) if self.relu else y
