"""The simplest FFN: a stack of residual 3-D convolution modules at full resolution."""

from __future__ import annotations

import itertools
from typing import Sequence

import tensorflow as tf

from ffn.training import layers
from ffn.training import model
from ffn.utils import errors


class ConvStack3DFFNModel(model.FFNModel):
  """`depth` residual modules of two 3x3x3 convolutions, then a 1x1x1 logit layer."""

  dim = 3

  def __init__(self, fov_size: Sequence[int], deltas: Sequence[int],
               batch_size: int | None = None, depth: int = 9,
               features: int | Sequence[int] = 32):
    fov_size = model.as_xyz(fov_size, 'fov_size')
    deltas = model.as_xyz(deltas, 'deltas')
    info = model.ModelInfo(deltas=deltas, pred_mask_size=fov_size,
                           input_seed_size=fov_size, input_image_size=fov_size)
    super().__init__(info, batch_size, name='seed_update')
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
      raise errors.FFNError(f'depth must be a positive integer, got {depth!r}')
    self.depth = depth
    self.features = features
    widths = self._conv_widths(depth, features)
    self._layer_names = []
    in_channels = 2
    for i in range(depth):
      a, b = widths[2 * i], widths[2 * i + 1]
      if i > 0 and b != in_channels:
        raise errors.FFNError(
            f'features: conv{i}_b has {b} outputs but its residual input has {in_channels}')
      self._add_layer(f'conv{i}_a', layers.Conv3D(in_channels, a, relu=True, name=f'conv{i}_a'))
      self._add_layer(f'conv{i}_b', layers.Conv3D(a, b, name=f'conv{i}_b'))
      in_channels = b
    self._add_layer('conv_lom', layers.Conv3D(in_channels, 1, kernel_size=(1, 1, 1),
                                              name='conv_lom'))

  @staticmethod
  def _conv_widths(depth: int, features) -> list[int]:
    """Output channels of the 2*depth 3x3x3 convolutions, in creation order."""
    if isinstance(features, int) and not isinstance(features, bool):
      widths = [features] * (2 * depth)
    else:
      try:
        widths = list(itertools.islice(iter(features), 2 * depth))
      except TypeError as e:
        raise errors.FFNError(f'features must be an int or a list of ints, got {features!r}') from e
      if len(widths) < 2 * depth:
        raise errors.FFNError(f'features lists {len(widths)} widths; depth {depth} needs {2 * depth}')
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
      raise errors.FFNError(f'features must be positive integers, got {features!r}')
    return widths

  def _add_layer(self, name: str, layer: layers.Conv3D) -> None:
    # Each layer is a direct attribute, so checkpoint paths read model/<name>/kernel.
    setattr(self, name, layer)
    self._layer_names.append(name)

  def named_variables(self) -> dict[str, tf.Variable]:
    """The model's weights keyed by '<layer>/<kernel|bias>', in creation order."""
    out = {}
    for name in self._layer_names:
      layer = getattr(self, name)
      out[f'{name}/kernel'] = layer.kernel
      out[f'{name}/bias'] = layer.bias
    return out

  def compute_update(self, net: tf.Tensor) -> tf.Tensor:
    """The residual conv stack over the [image, seed] channels; returns the logit update."""
    net = self.conv0_b(self.conv0_a(net))
    for i in range(1, self.depth):
      residual = net
      # max(x, 0) is ReLU; spelt so that grappler's remapper does not try to fuse
      # this activation into the previous convolution, whose sum also feeds the
      # residual connection (TF 2.21 then aborts remapping with an error).
      net = tf.maximum(net, 0.0)
      net = getattr(self, f'conv{i}_a')(net)
      net = getattr(self, f'conv{i}_b')(net)
      net = net + residual
    return self.conv_lom(tf.maximum(net, 0.0))
