"""What the CPU offers for reduced-precision arithmetic (bfloat16, float16)."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
from typing import Optional

CPUINFO = '/proc/cpuinfo'
# Lowest CUDA compute capability with fast (tensor-core) arithmetic in each precision.
MIN_GPU_CAPABILITY = {'bfloat16': (8, 0), 'float16': (7, 0)}
_NO_GPU = ' and no GPU is used'
OPENVINO_SOURCE = 'OpenVINO CPU capabilities'


@dataclasses.dataclass(frozen=True)
class CpuFeatures:
  """Reduced-precision matrix units of the CPU, and where that was learnt."""
  amx_bf16: bool = False
  avx512_bf16: bool = False
  amx_fp16: bool = False
  avx512_fp16: bool = False
  avx512f: bool = False
  avx2: bool = False
  source: str = 'unknown'

  @property
  def fast_bfloat16(self) -> bool:
    """Whether bfloat16 runs natively (AMX or AVX512_BF16) rather than emulated."""
    return self.amx_bf16 or self.avx512_bf16

  @property
  def fast_float16(self) -> bool:
    """Whether float16 runs natively (AMX-FP16 or AVX512_FP16) rather than emulated."""
    return self.amx_fp16 or self.avx512_fp16

  @property
  def kind(self) -> str:
    """The CPU kind the README's times are given for: AMX, AVX512_BF16 only or AVX2 only."""
    if self.source == OPENVINO_SOURCE:  # It reports BF16, not the unit nor AVX2.
      return 'AMX or AVX512_BF16' if self.fast_bfloat16 else 'no AMX or AVX512_BF16'
    if self.amx_bf16:
      return 'AMX'
    if self.avx512_bf16:
      return 'AVX512_BF16 only (no AMX)'
    if self.avx512f:
      return 'AVX-512 without BF16'
    if self.avx2:
      return 'AVX2 only (no AVX-512, no bfloat16)'
    return 'no AVX2'

  def describe(self) -> str:
    """E.g. 'AMX: AMX-BF16, AVX512_BF16 (from /proc/cpuinfo)'."""
    names = [name for name, present in (('AMX-BF16', self.amx_bf16),
                                        ('AVX512_BF16', self.avx512_bf16),
                                        ('AMX-FP16', self.amx_fp16),
                                        ('AVX512_FP16', self.avx512_fp16)) if present]
    offered = ', '.join(names) if names else 'neither AMX nor AVX512_BF16'
    return f'{self.kind}: {offered} (from {self.source})'


def parse_cpuinfo(text: str) -> CpuFeatures:
  """The features listed on the first `flags` line of /proc/cpuinfo text."""
  for line in text.splitlines():
    key, _, value = line.partition(':')
    if key.strip() == 'flags':
      flags = set(value.split())
      return CpuFeatures(amx_bf16='amx_bf16' in flags, avx512_bf16='avx512_bf16' in flags,
                         amx_fp16='amx_fp16' in flags, avx512_fp16='avx512_fp16' in flags,
                         avx512f='avx512f' in flags, avx2='avx2' in flags, source=CPUINFO)
  return CpuFeatures(source=f'{CPUINFO} (no flags line)')


def _openvino_features() -> CpuFeatures:
  """The features OpenVINO's CPU plugin reports (works on every OS it supports)."""
  try:
    import openvino  # pylint: disable=g-import-not-at-top  (optional, slow to import)
    capabilities = set(openvino.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'))
  except Exception as e:  # pylint: disable=broad-except
    logging.info('Cannot ask OpenVINO for the CPU capabilities: %s', e)
    return CpuFeatures(source='nothing: no /proc/cpuinfo and no OpenVINO')
  # OpenVINO lists BF16/FP16 only where the CPU computes them natively; it does
  # not say which unit, so both flags of a kind are set.
  bf16, fp16 = 'BF16' in capabilities, 'FP16' in capabilities
  return CpuFeatures(amx_bf16=bf16, avx512_bf16=bf16, amx_fp16=fp16, avx512_fp16=fp16,
                     source=OPENVINO_SOURCE)


def usable_cpus() -> int:
  """CPUs this process may run on (its affinity mask, else the machine's count)."""
  if hasattr(os, 'sched_getaffinity'):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def cpu_features() -> CpuFeatures:
  """The reduced-precision features of this machine's CPU (cached)."""
  if sys.platform.startswith('linux'):
    try:
      with open(CPUINFO, encoding='utf-8', errors='replace') as f:
        return parse_cpuinfo(f.read())
    except OSError:
      pass
  return _openvino_features()


def slow_precision_reason(precision: str, cpu: CpuFeatures,
                          gpu_capability: Optional[tuple[int, int]] = None,
                          cpu_float16: bool = False) -> str:
  """Why the network in `precision` would be emulated slowly here ('' if it runs natively).

  `gpu_capability`: CUDA compute capability of the GPU that computes (None: the
  CPU does). `cpu_float16`: whether the runtime uses the CPU's float16 units
  (OpenVINO does; TensorFlow does not).
  """
  if precision == 'float32':
    return ''
  if gpu_capability is not None:
    if tuple(gpu_capability) >= MIN_GPU_CAPABILITY[precision]:
      return ''
    return (f'the GPU (compute capability {gpu_capability[0]}.{gpu_capability[1]}) has no '
            f'fast {precision}')
  if precision == 'bfloat16':
    return '' if cpu.fast_bfloat16 else f'the CPU has no AMX-BF16 or AVX512_BF16{_NO_GPU}'
  if not cpu_float16:
    return 'this runtime has no fast float16 on CPUs'
  return '' if cpu.fast_float16 else f'the CPU has no AMX-FP16 or AVX512_FP16{_NO_GPU}'
