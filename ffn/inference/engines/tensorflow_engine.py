"""The TensorFlow engine: the restored model itself, or its network cast to a reduced precision.

The TensorFlow model is the one definition of the network; float32 runs it as
it is (upstream's numbers), bfloat16 and float16 compute in those types with
float32 inputs and outputs. TensorFlow's calls of one function from several
threads are not safe here (they crash), so objects grow one at a time.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Optional, Sequence

from ffn.utils import errors
from ffn.utils import hardware

if TYPE_CHECKING:
  import tensorflow as tf
  from ffn.training import model as model_lib

NAME = 'tensorflow'
BATCHING = True
USES_GPU = True
CONCURRENT_CALLS = False


def device_capability() -> Optional[tuple[int, int]]:
  """The compute capability of the GPU TensorFlow would use, or None."""
  from ffn.training import precision as precision_lib  # pylint: disable=g-import-not-at-top
  return precision_lib.gpu_capability()


def precision_reason(precision: str, cpu: hardware.CpuFeatures,
                     gpu: Optional[tuple[int, int]]) -> str:
  """Why `precision` would be emulated slowly by TensorFlow here ('' when native)."""
  return hardware.slow_precision_reason(precision, cpu, gpu, cpu_float16=False)


class TensorFlowEngine:
  """The model's network computed in a reduced precision, with float32 inputs and outputs."""

  def __init__(self, model: model_lib.FFNModel, precision: str):
    # pylint: disable=g-import-not-at-top
    import tensorflow as tf
    from ffn.training import precision as precision_lib
    # pylint: enable=g-import-not-at-top
    self.info = model.info
    dtype = precision_lib.DTYPES[precision]

    def predict_logits(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
      return model.call_in(image, seed, dtype)

    self.predict_logits = tf.function(predict_logits,
                                      input_signature=model.predict_logits.input_signature)


def limit_threads(threads: int) -> None:
  """Makes TensorFlow's ops use `threads` CPU threads (set before TensorFlow starts its runtime)."""
  if 'tensorflow' not in sys.modules:
    # Read when the runtime starts, so that a worker whose model needs no TensorFlow never
    # loads it.
    os.environ['TF_NUM_INTRAOP_THREADS'] = os.environ['TF_NUM_INTEROP_THREADS'] = str(threads)
    return
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  threading = tf.config.threading
  if (threading.get_intra_op_parallelism_threads() == threads
      and threading.get_inter_op_parallelism_threads() == threads):
    return
  try:
    threading.set_intra_op_parallelism_threads(threads)
    threading.set_inter_op_parallelism_threads(threads)
  except RuntimeError:  # The runtime has started (a model was built): its pools are fixed.
    logging.warning('TensorFlow has started already; its thread pools keep their size, not %d '
                    'threads', threads)


def build(model, precision: str, batch_size: int = 1):
  """The model itself in float32 (any model-like object); else its network cast to `precision`."""
  del batch_size  # TensorFlow traces each batch size on first use.
  if precision == 'float32':
    return model
  from ffn.training import model as model_lib  # pylint: disable=g-import-not-at-top
  if not isinstance(model, model_lib.FFNModel):
    raise errors.FFNError(f'precision {precision} needs a TensorFlow FFN model, got '
                          f'{type(model).__name__}')
  return TensorFlowEngine(model, precision)


def instances(engine, count: int) -> Sequence:
  """The engine once: objects are grown one at a time on TensorFlow."""
  del count
  return [engine]
