"""TensorBoard scalar and image summaries written with core TF (no tensorboard package needed)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2


def _metadata(plugin: str) -> bytes:
  """Serialized SummaryMetadata telling TensorBoard which plugin renders the tag."""
  meta = summary_pb2.SummaryMetadata()
  meta.plugin_data.plugin_name = plugin
  return meta.SerializeToString()


def scalar(tag: str, value, step: int) -> None:
  """Writes a float scalar to the default summary writer."""
  tf.summary.write(tag, tf.cast(tf.convert_to_tensor(value), tf.float32), step=step,
                   metadata=_metadata('scalars'))


def image(tag: str, pixels: np.ndarray, step: int) -> None:
  """Writes a uint8 [h, w, c] image (c = 1 or 3) to the default summary writer as PNG."""
  pixels = np.asarray(pixels, np.uint8)
  png = tf.io.encode_png(pixels)
  tensor = tf.stack([tf.constant(str(pixels.shape[1])), tf.constant(str(pixels.shape[0])), png])
  tf.summary.write(tag, tensor, step=step, metadata=_metadata('images'))
