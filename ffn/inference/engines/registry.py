"""The engines that run a restored FFN model, found by the request's engine name.

An engine is model-like (`Engine`). Each engine kind is one module of this
package named `<name>_engine.py` (`EngineModule`): its NAME is the request's
engine name in lower case (`InferenceRequest.Engine`), so adding an engine is
one module and one enum value. Modules import their runtime (TensorFlow,
OpenVINO) only when an engine is built, so that a bad request fails before
either starts.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any, Optional, Protocol, Sequence

import numpy as np

from ffn.utils import errors
from ffn.utils import hardware


class Engine(Protocol):
  """Runs the network: `info` (the model's xyz geometry) and `predict_logits(image, seed)`.

  `predict_logits` takes float32 `[b, z, y, x, 1]` image and seed arrays (or
  tensors) and returns float32 logits of the seed's shape; DirectExecutor and
  BatchExecutor serve any engine alike. `b` may be above 1 only where the
  module says BATCHING.
  """
  info: Any

  def predict_logits(self, image: np.ndarray, seed: np.ndarray) -> Any:
    ...


class EngineModule(Protocol):
  """What a `<name>_engine.py` module provides."""
  NAME: str
  BATCHING: bool  # Whether one call may hold several FOVs (batch_size > 1).
  CONCURRENT_CALLS: bool  # Whether several threads may call its instances at once.
  USES_GPU: bool  # Whether it runs on a GPU when one is there (device_capability).

  def device_capability(self) -> Optional[tuple[int, int]]:
    """The CUDA compute capability of the GPU the engine would use; None: the CPU."""

  def precision_reason(self, precision: str, cpu: hardware.CpuFeatures,
                       gpu: Optional[tuple[int, int]]) -> str:
    """Why `precision` would be emulated slowly here; '' when it runs natively."""

  def limit_threads(self, threads: int) -> None:
    """Makes this process's engines use `threads` CPU threads (before any is built)."""

  def build(self, model, precision: str, batch_size: int) -> Engine:
    """The engine of a restored model, computing in `precision`."""

  def instances(self, engine: Engine, count: int) -> Sequence[Engine]:
    """`count` engines to grow objects at once, sharing the cores; [engine] if it cannot."""


@functools.lru_cache(maxsize=None)
def modules() -> dict[str, EngineModule]:
  """Every engine module of this package, by NAME."""
  package = importlib.import_module(__package__)
  found = {}
  for info in pkgutil.iter_modules(package.__path__):
    if info.name.endswith('_engine'):
      module = importlib.import_module(f'{__package__}.{info.name}')
      found[module.NAME] = module
  return found


def names() -> tuple[str, ...]:
  """The engine names a request may give, lower case."""
  return tuple(sorted(modules()))


def module(name: str) -> EngineModule:
  """The module of engine `name`; FFNError naming the known ones otherwise."""
  if name not in modules():
    raise errors.FFNError(f'engine {errors.shown(name)} is not known; expected one of '
                          f'{", ".join(names())}')
  return modules()[name]
