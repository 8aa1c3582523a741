"""Which engine and precision run the FFN model: the request's wish, checked against the hardware.

The request names an engine (one of `registry.names()`) and a precision
(float32, bfloat16, float16); unset means upstream's TensorFlow float32.
Reduced precision runs only where the hardware computes it natively; elsewhere
it would be emulated, many times slower, so float32 runs instead and the
settings say why.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Optional

from ffn.inference import inference_pb2
from ffn.inference.engines import registry
from ffn.utils import errors
from ffn.utils import hardware

PRECISIONS = ('float32', 'bfloat16', 'float16')
_Request = inference_pb2.InferenceRequest


@dataclasses.dataclass(frozen=True)
class EngineSettings:
  """What runs the model: engine, precision and device, and why if not as requested."""
  engine: str
  precision: str
  requested_precision: str
  device: str
  cpu: str
  note: str = ''

  def describe(self) -> str:
    """One log line: what runs, what was asked for, what the CPU offers."""
    text = (f'Inference engine {self.engine}, precision {self.precision} on {self.device} '
            f'(requested {self.requested_precision}); '
            f'CPU offers {self.cpu}.')
    return f'{text} {self.note}' if self.note else text

  def to_json(self) -> str:
    """The settings as a JSON object (saved with every result)."""
    return json.dumps(dataclasses.asdict(self), sort_keys=True)


def _enum_name(request: _Request, field: str, enum, default: str, known) -> str:
  """The lower-case name of an enum field of the request (`default` when unset)."""
  if not request.HasField(field):
    return default
  number = getattr(request, field)
  try:
    name = enum.Name(number).lower()
  except ValueError:
    name = str(number)
  if name.endswith('_unspecified'):
    return default
  if name not in known:
    raise errors.FFNError(f'InferenceRequest.{field} {name!r} is not known; expected one of '
                     f'{", ".join(n.upper() for n in known)}')
  return name


def requested(request: _Request) -> tuple[str, str]:
  """(engine, precision) that the request asks for; upstream's defaults when unset."""
  engine = _enum_name(request, 'engine', _Request.Engine, 'tensorflow', registry.names())
  precision = _enum_name(request, 'precision', _Request.Precision, 'float32', PRECISIONS)
  return engine, precision


def check_names(engine: str, precision: str) -> None:
  """Raises FFNError naming an unknown engine or precision."""
  registry.module(engine)
  if precision not in PRECISIONS:
    raise errors.FFNError(f'precision {precision!r} is not known; expected one of '
                     f'{", ".join(PRECISIONS)}')


def resolve(engine: str, precision: str, cpu: hardware.CpuFeatures,
            gpu_capability: Optional[tuple[int, int]] = None) -> EngineSettings:
  """The settings that run: float32 where `precision` would be emulated slowly.

  `gpu_capability` is the CUDA compute capability of the GPU the engine would
  use (None: it runs on the CPU).
  """
  check_names(engine, precision)
  module = registry.module(engine)
  on_gpu = gpu_capability is not None and module.USES_GPU
  why = module.precision_reason(precision, cpu, gpu_capability if on_gpu else None)
  note = ''
  ran = precision
  if why:
    ran = 'float32'
    note = f'{precision} would be emulated slowly ({why}): running float32.'
  return EngineSettings(engine=engine, precision=ran, requested_precision=precision,
                        device='GPU' if on_gpu else 'CPU', cpu=cpu.describe(),
                        note=note)


def settings_for(engine: str, precision: str) -> EngineSettings:
  """The settings that run on this machine for the requested engine and precision."""
  check_names(engine, precision)
  gpu = registry.module(engine).device_capability()
  return resolve(engine, precision, hardware.cpu_features(), gpu)


def limit_threads(engine: str, threads: Optional[int]) -> None:
  """Gives the process's `engine` `threads` CPU threads (None: every usable one), and logs it."""
  usable = hardware.usable_cpus()
  if threads is None:
    logging.info('Engine %s: all %d usable CPU threads.', engine, usable)
    return
  registry.module(engine).limit_threads(threads)
  logging.info('Engine %s: %d CPU thread(s) (of %d usable here).', engine, threads, usable)


def build(model, settings: EngineSettings, batch_size: int = 1):
  """The engine that runs `model` as `settings` say; `batch_size`: the batch it mostly sees."""
  return registry.module(settings.engine).build(model, settings.precision, batch_size)


def instances(engine, settings: EngineSettings, count: int) -> list:
  """`count` engines to grow objects at once (fewer, one, where the engine cannot)."""
  if count <= 1:
    return [engine]
  return list(registry.module(settings.engine).instances(engine, count))
