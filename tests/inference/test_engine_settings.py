"""Which engine and precision run: the request's wish against the hardware."""

from __future__ import annotations

import json

import pytest

from ffn.inference import inference_pb2
from ffn.inference.engines import settings as engine_settings
from ffn.inference.request import run_request
from ffn.utils import hardware

ALL = hardware.CpuFeatures(amx_bf16=True, avx512_bf16=True, amx_fp16=True, avx512_fp16=True,
                           source='test')
NONE = hardware.CpuFeatures(source='test')


def test_request_without_settings_is_tensorflow_float32():
  assert engine_settings.requested(inference_pb2.InferenceRequest()) == ('tensorflow', 'float32')


@pytest.mark.parametrize('text,expected', [
    ('engine: OPENVINO precision: BFLOAT16', ('openvino', 'bfloat16')),
    ('engine: TENSORFLOW precision: FLOAT16', ('tensorflow', 'float16')),
    ('precision: FLOAT32', ('tensorflow', 'float32')),
    ('engine: ENGINE_UNSPECIFIED precision: PRECISION_UNSPECIFIED', ('tensorflow', 'float32')),
])
def test_requested_names(text, expected):
  assert engine_settings.requested(run_request.parse_request(text)) == expected


@pytest.mark.parametrize('text,bad', [('engine: ONNX', 'ONNX'),
                                      ('precision: INT8', 'INT8')])
def test_unknown_engine_or_precision_is_one_clear_error(text, bad):
  with pytest.raises(ValueError, match=bad) as info:
    run_request.parse_request(text)
  assert '\n' not in str(info.value)


@pytest.mark.parametrize('engine,precision', [('onnx', 'float32'), ('tensorflow', 'int8')])
def test_resolve_rejects_unknown_names(engine, precision):
  with pytest.raises(ValueError, match=engine if engine == 'onnx' else precision):
    engine_settings.resolve(engine, precision, ALL)


@pytest.mark.parametrize('engine,precision,cpu,gpu,runs,device', [
    ('tensorflow', 'float32', NONE, None, 'float32', 'CPU'),
    ('tensorflow', 'bfloat16', ALL, None, 'bfloat16', 'CPU'),
    ('tensorflow', 'bfloat16', NONE, None, 'float32', 'CPU'),
    ('tensorflow', 'bfloat16', NONE, (8, 0), 'bfloat16', 'GPU'),
    ('tensorflow', 'bfloat16', NONE, (7, 5), 'float32', 'GPU'),
    ('tensorflow', 'float16', NONE, (7, 0), 'float16', 'GPU'),
    ('tensorflow', 'float16', ALL, None, 'float32', 'CPU'),
    ('openvino', 'bfloat16', ALL, None, 'bfloat16', 'CPU'),
    ('openvino', 'bfloat16', NONE, (9, 0), 'float32', 'CPU'),
    ('openvino', 'float16', ALL, None, 'float16', 'CPU'),
    ('openvino', 'float32', NONE, None, 'float32', 'CPU'),
])
def test_resolve_runs_float32_where_reduced_precision_is_emulated(engine, precision, cpu, gpu,
                                                                  runs, device):
  settings = engine_settings.resolve(engine, precision, cpu, gpu)
  assert (settings.engine, settings.precision, settings.device) == (engine, runs, device)
  assert settings.requested_precision == precision
  if runs != precision:
    assert 'emulated' in settings.note and 'running float32' in settings.note
    assert settings.note in settings.describe()
  else:
    assert not settings.note


def test_settings_json_and_description():
  settings = engine_settings.resolve('openvino', 'bfloat16', ALL)
  assert json.loads(settings.to_json()) == {
      'engine': 'openvino', 'precision': 'bfloat16', 'requested_precision': 'bfloat16',
      'device': 'CPU', 'cpu': ALL.describe(), 'note': ''}
  line = settings.describe()
  assert 'openvino' in line and 'bfloat16' in line and 'AMX-BF16' in line


def test_parse_cpuinfo():
  text = ('processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile amx_bf16\n'
          'processor\t: 1\n')
  features = hardware.parse_cpuinfo(text)
  assert features.amx_bf16 and features.avx512_bf16 and features.fast_bfloat16
  assert not features.fast_float16
  assert 'AMX-BF16' in features.describe() and '/proc/cpuinfo' in features.describe()
  plain = hardware.parse_cpuinfo('flags\t: fpu sse avx2\n')
  assert not plain.fast_bfloat16
  assert 'neither AMX nor AVX512_BF16' in plain.describe()


@pytest.mark.parametrize('flags, kind', [
    ('avx2 avx512f avx512_bf16 amx_tile amx_bf16', 'AMX'),
    ('avx2 avx512f avx512_bf16', 'AVX512_BF16 only (no AMX)'),
    ('avx2 avx512f', 'AVX-512 without BF16'),
    ('sse4_2 avx avx2 fma', 'AVX2 only (no AVX-512, no bfloat16)'),
    ('sse4_2 avx', 'no AVX2'),
])
def test_cpu_kind_is_named_in_the_engine_log_line(flags, kind):
  cpu = hardware.parse_cpuinfo(f'flags\t: fpu {flags}\n')
  assert cpu.kind == kind
  line = engine_settings.resolve('openvino', 'bfloat16', cpu).describe()
  assert f'CPU offers {kind}: ' in line
  assert ('running float32' in line) == (kind not in ('AMX', 'AVX512_BF16 only (no AMX)'))


def test_this_machine_is_described():
  assert hardware.cpu_features().describe()


def test_fast_sample_config_is_upstreams_plus_openvino_bfloat16(repo_root):
  configs = repo_root / 'configs'
  upstream = run_request.parse_request(
      (configs / 'inference_training_sample2.pbtxt').read_text())
  fast = run_request.parse_request(
      (configs / 'inference_training_sample2_fast.pbtxt').read_text())
  assert engine_settings.requested(upstream) == ('tensorflow', 'float32')
  assert engine_settings.requested(fast) == ('openvino', 'bfloat16')
  assert fast.segmentation_output_dir != upstream.segmentation_output_dir
  assert fast.concurrent_objects == 2
  for field in ('engine', 'precision', 'concurrent_objects', 'segmentation_output_dir'):
    fast.ClearField(field)
  upstream.ClearField('segmentation_output_dir')
  assert fast == upstream


def test_cpu_features_without_proc_cpuinfo_ask_openvino(monkeypatch):
  monkeypatch.setattr(hardware.sys, 'platform', 'darwin')
  hardware.cpu_features.cache_clear()
  try:
    features = hardware.cpu_features()
  finally:
    hardware.cpu_features.cache_clear()
  assert features.source == 'OpenVINO CPU capabilities'
  assert features.fast_bfloat16 == features.amx_bf16 == features.avx512_bf16
