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


def histogram(tag: str, values, step: int, buckets: int = 30) -> None:
  """Writes a histogram of `values` (TensorBoard's [left, right, count] bucket format)."""
  values = np.asarray(values, np.float64).ravel()
  if values.size == 0:
    return
  lo, hi = float(values.min()), float(values.max())
  if lo == hi:  # One bucket around the single value (zero biases at the start).
    counts, edges = np.array([values.size]), np.array([lo - 0.5, hi + 0.5])
  else:
    counts, edges = np.histogram(values, bins=buckets)
  table = np.stack([edges[:-1], edges[1:], counts], axis=1).astype(np.float64)
  tf.summary.write(tag, tf.constant(table), step=step, metadata=_metadata('histograms'))
