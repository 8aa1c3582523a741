"""The FFN model base: geometry, seed update, loss and gradient clipping."""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import tensorflow as tf

from ffn.utils import axes
from ffn.utils import errors
from ffn.utils.model_info import ModelInfo
from ffn.utils.model_info import as_xyz

# Element-wise bound on every gradient entry, as upstream trains.
MAX_GRADIENT_ENTRY_MAG = 0.7


def make_shifts(deltas: Sequence[int]) -> list[tuple[int, int, int]]:
  """The 26 (dx, dy, dz) moves by ±delta, x outermost then y then z, as upstream orders them."""
  dx, dy, dz = deltas
  return [(x, y, z)
          for x, y, z in itertools.product((-dx, 0, dx), (-dy, 0, dy), (-dz, 0, dz))
          if (x, y, z) != (0, 0, 0)]


def update_seed(seed: tf.Tensor, update: tf.Tensor) -> tf.Tensor:
  """Adds a logit `update` to `seed`, zero-padding a smaller update around its centre."""
  seed_zyx = seed.shape[1:4]
  update_zyx = update.shape[1:4]
  if seed_zyx == update_zyx:
    return seed + update
  pads = [[0, 0]]
  for s, u in zip(seed_zyx, update_zyx):
    d = s - u
    pads.append([d // 2, d - d // 2])
  pads.append([0, 0])
  return seed + tf.pad(update, pads)


def sigmoid_pixelwise_loss(logits: tf.Tensor, labels: tf.Tensor,
                           loss_weights: tf.Tensor) -> tf.Tensor:
  """Mean weighted sigmoid cross-entropy over every voxel of the batch; fails if not finite."""
  pixel_loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
  loss = tf.reduce_mean(pixel_loss * loss_weights)
  return tf.debugging.check_numerics(loss, 'Invalid loss detected')


def check_finite_gradients(grads: Sequence[tf.Tensor]) -> list[tf.Tensor]:
  """The gradients, failing with 'Invalid gradient detected' if any entry is NaN or Inf."""
  # A finite loss does not imply finite gradients: oneDNN's ReLU maps NaN inputs
  # to 0, so a NaN image reaches the weights through the gradients alone.
  return [tf.debugging.check_numerics(g, 'Invalid gradient detected') for g in grads]


def clip_gradients(grads: Sequence[tf.Tensor],
                   max_entry_mag: float = MAX_GRADIENT_ENTRY_MAG) -> list[tf.Tensor]:
  """Clips every gradient entry to [-max_entry_mag, +max_entry_mag] (not by norm)."""
  if max_entry_mag <= 0:
    return list(grads)
  return [tf.clip_by_value(g, -max_entry_mag, max_entry_mag) for g in grads]


class FFNModel(tf.Module):
  """Base of FFN models: maps (image, seed) logits to new seed logits.

  Subclasses create their variables in `__init__` and implement `compute_update`,
  which sees the [image, seed] channel stack and returns the logit update.
  """

  dim = 3

  def __init__(self, info: ModelInfo, batch_size: int | None = None,
               name: str | None = None):
    super().__init__(name=name)
    self.info = ModelInfo(
        deltas=as_xyz(info.deltas, 'deltas'),
        pred_mask_size=as_xyz(info.pred_mask_size, 'pred_mask_size'),
        input_seed_size=as_xyz(info.input_seed_size, 'input_seed_size'),
        input_image_size=as_xyz(info.input_image_size, 'input_image_size'),
        additive=info.additive)
    for what in ('pred_mask_size', 'input_seed_size', 'input_image_size'):
      if min(getattr(self.info, what)) < 1:
        raise errors.FFNError(f'{what} must be positive, got {getattr(self.info, what)}')
    self.batch_size = batch_size
    self.deltas = np.array(self.info.deltas)
    self.pred_mask_size = np.array(self.info.pred_mask_size)
    self.input_seed_size = np.array(self.info.input_seed_size)
    self.input_image_size = np.array(self.info.input_image_size)
    self.shifts = make_shifts(self.info.deltas)
    self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name='global_step',
                                   aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    image_spec = tf.TensorSpec([None] + list(axes.xyz_to_zyx(self.info.input_image_size)) + [1],
                               tf.float32, name='patches')
    seed_spec = tf.TensorSpec([None] + list(axes.xyz_to_zyx(self.info.input_seed_size)) + [1],
                              tf.float32, name='seed')
    self.predict_logits = tf.function(self.__call__, input_signature=[image_spec, seed_spec])

  def __call__(self, image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Returns the new seed logits [b, z, y, x, 1] for image and seed logits."""
    net = tf.concat([image, seed], axis=-1)  # Channel 0 image, channel 1 seed.
    return update_seed(seed, self.compute_update(net))

  def call_in(self, image: tf.Tensor, seed: tf.Tensor,
              compute_dtype: tf.DType = tf.float32) -> tf.Tensor:
    """Like `__call__`, with the network computed in `compute_dtype`; float32 logits.

    The float32 weights and the [image, seed] stack are cast to `compute_dtype`
    (bfloat16 or float16); the update is cast back and added to the float32 seed.
    """
    if compute_dtype == tf.float32:
      return self(image, seed)
    net = tf.cast(tf.concat([image, seed], axis=-1), compute_dtype)
    update = tf.cast(self.compute_update(net), tf.float32)
    return update_seed(seed, update)

  def compute_update(self, net: tf.Tensor) -> tf.Tensor:
    """Returns the logit update for the [image, seed] stack `net`."""
    raise NotImplementedError

  def named_variables(self) -> dict[str, tf.Variable]:
    """The model's weights keyed by '<layer>/<kernel|bias>', in creation order."""
    raise NotImplementedError
