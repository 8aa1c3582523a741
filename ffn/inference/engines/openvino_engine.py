"""The OpenVINO engine: the model's `tf.function` converted once, compiled per batch for the CPU.

The model is either a restored TensorFlow model, converted at start, or one
exported once by ffn-export-model (`exported_model`), read from its file
without TensorFlow; both compute the same logits.

Several instances, each compiled with its share of the CPU threads, grow
objects at once (`instances`); a call made while no other object's call runs
uses all the cores.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from ffn.inference.engines import exported_model
from ffn.utils import errors
from ffn.utils import hardware

if TYPE_CHECKING:
  from ffn.training import model as model_lib

NAME = 'openvino'
BATCHING = True
USES_GPU = False
CONCURRENT_CALLS = True
# OpenVINO's names for the precisions (INFERENCE_PRECISION_HINT).
HINTS = {'float32': 'f32', 'bfloat16': 'bf16', 'float16': 'f16'}
# The CPU threads this process's engines share (`limit_threads`); None: every usable CPU.
_threads: Optional[int] = None
# 0 or 1 turns OpenVINO's pinning of its threads to cores off or on (default: `_pinning`).
PINNING_ENV = 'FFN_OPENVINO_CPU_PINNING'


def _pinning() -> dict:
  """ENABLE_CPU_PINNING: $FFN_OPENVINO_CPU_PINNING, else off for a share of the CPUs.

  Engines of several processes that each pin their threads all pin them to
  the first cores: two 1-thread workers on 2 cores ran at 0.51 times one
  2-thread worker pinned, 0.98 times unpinned (bench/scaling.py).
  """
  value = os.environ.get(PINNING_ENV, '')
  if value == '':
    shared = _threads is not None and _threads < hardware.usable_cpus()
    return {'ENABLE_CPU_PINNING': False} if shared else {}
  if value not in ('0', '1'):
    raise errors.FFNError(f'{PINNING_ENV}={errors.shown(value)}: expected 0 or 1')
  return {'ENABLE_CPU_PINNING': value == '1'}


def limit_threads(threads: int) -> None:
  """Makes engines built from now on use `threads` CPU threads in all (their share of a node)."""
  global _threads
  _threads = int(threads)


def _thread_count() -> int:
  """The CPU threads this process's engines may use."""
  return _threads if _threads is not None else hardware.usable_cpus()


def device_capability() -> Optional[tuple[int, int]]:
  """None: OpenVINO runs on the CPU here."""
  return None


def precision_reason(precision: str, cpu: hardware.CpuFeatures,
                     gpu: Optional[tuple[int, int]]) -> str:
  """Why `precision` would be emulated slowly by OpenVINO on this CPU ('' when native)."""
  del gpu
  return hardware.slow_precision_reason(precision, cpu, None, cpu_float16=True)


class OpenVinoEngine:
  """The model's `predict_logits` in OpenVINO, compiled per batch size for the CPU."""

  def __init__(self, model: model_lib.FFNModel | exported_model.ExportedModel, precision: str,
               batch_size: int = 1):
    import openvino  # pylint: disable=g-import-not-at-top  (slow to import; only used here)
    self.info = model.info
    start = time.perf_counter()
    self._core = openvino.Core()
    if isinstance(model, exported_model.ExportedModel):
      self._model = self._core.read_model(model.xml_path)
      done = 'read from ' + model.xml_path
    else:
      self._model = convert(model)
      done = 'converted to OpenVINO'
    self._inputs = [i.get_any_name() for i in self._model.inputs]
    # FFNModel.predict_logits names its inputs; fall back to their order.
    self._image_input = self._inputs.index('patches') if 'patches' in self._inputs else 0
    self._seed_input = self._inputs.index('seed') if 'seed' in self._inputs else 1
    self._config = {'INFERENCE_PRECISION_HINT': HINTS[precision], 'PERFORMANCE_HINT': 'LATENCY'}
    if _threads is not None:
      self._config.update(INFERENCE_NUM_THREADS=_threads)
    self._config.update(_pinning())
    self._requests: dict[int, object] = {}
    self._lock = threading.Lock()
    self._batch_size = batch_size
    logging.info('Model %s in %.1f s (inputs %s).', done, time.perf_counter() - start,
                 self._inputs)
    # Compiled now rather than inside the first FOV; other sizes on first use.
    self._request_for(batch_size)

  def with_threads(self, threads: int) -> OpenVinoEngine:
    """Another instance of this engine (the same converted model) using `threads` CPU threads."""
    other = copy.copy(self)
    # Unpinned: pinned instances of few threads would all sit on the first cores.
    other._config = dict(self._config, INFERENCE_NUM_THREADS=int(threads),
                         ENABLE_CPU_PINNING=False)
    # Its own compiled model: requests of one compiled model share its threads.
    other._requests = {}
    other._lock = threading.Lock()
    other._request_for(self._batch_size)
    return other

  def _request_for(self, batch: int):
    """The infer request of the model compiled for this batch size (compiled on first use)."""
    request = self._requests.get(batch)
    if request is None:
      model = self._model.clone()
      model.reshape({i.get_any_name(): [batch] + list(i.get_partial_shape())[1:]
                     for i in self._model.inputs})
      compiled = self._core.compile_model(model, 'CPU', self._config)
      request = self._requests[batch] = compiled.create_infer_request()
      logging.info('OpenVINO model compiled for batch %d (%s).', batch, self._config)
    return request

  def predict_logits(self, image: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """float32 logits [b, z, y, x, 1] (a fresh array, never OpenVINO's output buffer)."""
    with self._lock:
      request = self._request_for(image.shape[0])
      # Copied straight into OpenVINO's input buffers (one copy, also from strided views).
      request.get_input_tensor(self._image_input).data[...] = image
      request.get_input_tensor(self._seed_input).data[...] = seed
      request.infer()
      return request.get_output_tensor(0).data.copy()


def convert(model: model_lib.FFNModel):
  """The OpenVINO model (float32 weights) of a TensorFlow FFN model's `predict_logits`."""
  import openvino  # pylint: disable=g-import-not-at-top
  return openvino.convert_model(model.predict_logits)


def build(model, precision: str, batch_size: int = 1) -> OpenVinoEngine:
  """The FFN model (TensorFlow, or exported) run by OpenVINO, computing in `precision`."""
  if not isinstance(model, exported_model.ExportedModel):
    # Only a TensorFlow model needs TensorFlow here.
    from ffn.training import model as model_lib  # pylint: disable=g-import-not-at-top
    if not isinstance(model, model_lib.FFNModel):
      raise errors.FFNError(f'engine openvino needs a TensorFlow FFN model to convert or an '
                            f'exported one, got {type(model).__name__}')
  return OpenVinoEngine(model, precision, batch_size)


class _ObjectInstance:
  """One object's model: its share of the cores, or all of them while no other object calls."""

  def __init__(self, own, full, in_flight: list[int], lock: threading.Lock):
    self.info = own.info
    self._own, self._full = own, full
    self._in_flight, self._lock = in_flight, lock

  def predict_logits(self, image: np.ndarray, seed: np.ndarray) -> np.ndarray:
    with self._lock:
      alone = self._in_flight[0] == 0
      self._in_flight[0] += 1
    try:
      return (self._full if alone else self._own).predict_logits(image, seed)
    finally:
      with self._lock:
        self._in_flight[0] -= 1


def _same_logits(engines: list, info) -> bool:
  """Whether the engines give bit-identical logits on one random FOV."""
  shape = (1,) + tuple(int(v) for v in info.input_image_size[::-1]) + (1,)
  rng = np.random.default_rng(0)
  image = rng.normal(size=shape).astype(np.float32)
  seed = (3 * rng.normal(size=shape)).astype(np.float32)
  first = engines[0].predict_logits(image, seed)
  return all(np.array_equal(first, e.predict_logits(image, seed)) for e in engines[1:])


def instances(engine, count: int) -> Sequence:
  """`count` engines to grow objects at once, sharing the CPU threads.

  Each instance is compiled with its share of the threads, so that each
  object's calls run on their own cores: one call spread over all cores waits
  for the slowest of them at every layer. A call made while no other object's
  call runs uses all the cores. Instances must compute bit-identical logits
  (checked here), or the objects would not be those grown one at a time.
  """
  if count <= 1 or not isinstance(engine, OpenVinoEngine):
    return [engine]
  threads = max(1, _thread_count() // count)
  own = [engine.with_threads(threads) for _ in range(count)]
  if not _same_logits([engine] + own, engine.info):
    logging.warning('OpenVINO instances of %d thread(s) compute other logits than one of all '
                    'cores; growing one object at a time.', threads)
    return [engine]
  logging.info('%d OpenVINO instances of %d CPU thread(s) each, one per object grown.',
               count, threads)
  in_flight, lock = [0], threading.Lock()
  return [_ObjectInstance(o, engine, in_flight, lock) for o in own]
