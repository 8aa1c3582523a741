"""The precision the network computes in: float32, or bfloat16/float16 where it is fast.

Weights stay float32 variables in every precision (checkpoints do not change);
reduced precision casts them and the activations inside the network only.
"""

from __future__ import annotations

from typing import Optional

from absl import logging
import tensorflow as tf

from ffn.utils import errors
from ffn.utils import hardware

DTYPES = {'float32': tf.float32, 'bfloat16': tf.bfloat16, 'float16': tf.float16}


def gpu_capability() -> Optional[tuple[int, int]]:
  """The CUDA compute capability of TensorFlow's first GPU (None without one)."""
  gpus = tf.config.list_physical_devices('GPU')
  if not gpus:
    return None
  details = tf.config.experimental.get_device_details(gpus[0])
  return tuple(details.get('compute_capability', (0, 0)))


def training_dtype(precision: str) -> tf.DType:
  """The compute dtype for training in `precision`; float32, saying why, where it would be slow."""
  if precision not in ('float32', 'bfloat16'):
    raise errors.FFNError(f'precision {precision!r} is not known for training; expected float32 '
                     'or bfloat16')
  gpu = gpu_capability()
  cpu = hardware.cpu_features()
  why = hardware.slow_precision_reason(precision, cpu, gpu)
  if why:
    logging.warning('%s would be emulated slowly (%s): training in float32.', precision, why)
    precision = 'float32'
  logging.info('Training computes in %s on %s (float32 weights, loss and optimizer state); '
               'CPU offers %s.', precision, 'GPU' if gpu is not None else 'CPU', cpu.describe())
  return DTYPES[precision]
