"""Every engine and precision segments a clear-cut synthetic volume exactly as float32 does."""

from __future__ import annotations

import json

from google.protobuf import text_format
import numpy as np
import pytest
import tensorflow as tf

from ffn.inference import inference_pb2
from ffn.inference.engines import openvino_engine
from ffn.inference.engines import registry
from ffn.inference.engines import settings as engine_settings
from ffn.inference.engines import tensorflow_engine
from ffn.inference.io import results
from ffn.inference.request import runner as runner_lib
from ffn.training.models import convstack_3d
from ffn.utils import errors
from ffn.utils import hardware

import synthetic_ffn

FAST_CPU = hardware.CpuFeatures(amx_bf16=True, avx512_bf16=True, amx_fp16=True,
                                avx512_fp16=True, source='test')
SLOW_CPU = hardware.CpuFeatures(source='test')


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  """(image spec, checkpoint prefix, labels) shared by the tests of this module."""
  return synthetic_ffn.write_blob_setup(tmp_path_factory.mktemp('engines'))


@pytest.fixture
def cpu(monkeypatch):
  """Sets what the CPU claims to offer (by default everything, so reduced precision runs)."""
  def claim(features):
    monkeypatch.setattr(hardware, 'cpu_features', lambda: features)
  claim(FAST_CPU)
  return claim


def _segment(setup, out_dir, **extra):
  """Runs the runner on the whole synthetic volume; returns (runner, segmentation, settings)."""
  spec, ckpt, labels = setup
  text = synthetic_ffn.request_text(spec, ckpt, str(out_dir), seed_policy='"PolicyGrid3d"',
                                    seed_policy_args=r'"{\"step\": 4, \"offsets\": [2]}"',
                                    **extra)
  runner = runner_lib.Runner()
  runner.start(text_format.Parse(text, inference_pb2.InferenceRequest()))
  try:
    runner.run((0, 0, 0), labels.shape)
  finally:
    runner.stop_executor()
  seg, _ = results.load_segmentation(str(out_dir), (0, 0, 0), split_cc=False)
  with np.load(results.segmentation_path(str(out_dir), (0, 0, 0)), allow_pickle=True) as data:
    settings = json.loads(str(data['engine_settings']))
  return runner, seg, settings


@pytest.fixture(scope='module')
def float32_result(setup, tmp_path_factory):
  """The segmentation of upstream's path: a request without engine or precision."""
  _, seg, settings = _segment(setup, tmp_path_factory.mktemp('fp32'))
  assert (settings['engine'], settings['precision']) == ('tensorflow', 'float32')
  return seg


def test_request_without_settings_runs_the_model_itself(setup, tmp_path, float32_result):
  runner, seg, settings = _segment(setup, tmp_path)
  assert isinstance(runner.model, convstack_3d.ConvStack3DFFNModel)
  assert runner.engine_settings.engine == 'tensorflow'
  assert runner.engine_settings.precision == settings['precision'] == 'float32'
  assert settings['requested_precision'] == 'float32'
  _, labels = synthetic_ffn.blob_volume()
  assert len(np.unique(seg)) > 3
  for sid in np.unique(seg)[1:]:
    assert len(np.unique(labels[seg == sid])) == 1
  np.testing.assert_array_equal(seg, float32_result)


@pytest.mark.parametrize('engine,precision,extra', [
    ('TENSORFLOW', 'FLOAT32', {}),
    ('TENSORFLOW', 'BFLOAT16', {}),
    ('OPENVINO', 'FLOAT32', {}),
    ('OPENVINO', 'BFLOAT16', {}),
    ('OPENVINO', 'FLOAT16', {}),
    ('TENSORFLOW', 'BFLOAT16', {'batch_size': 2, 'concurrent_requests': 2}),
    ('OPENVINO', 'BFLOAT16', {'batch_size': 2, 'concurrent_requests': 2}),
    ('OPENVINO', 'BFLOAT16', {'concurrent_objects': 2}),
])
def test_engine_and_precision_give_the_float32_segmentation(setup, tmp_path, cpu,
                                                           float32_result, engine, precision,
                                                           extra):
  del cpu  # Claims native bfloat16 and float16, so that they run here.
  runner, seg, settings = _segment(setup, tmp_path, engine=engine, precision=precision,
                                   **extra)
  assert settings['engine'] == engine.lower()
  assert settings['precision'] == settings['requested_precision'] == precision.lower()
  assert runner.engine_settings.to_json() == json.dumps(settings, sort_keys=True)
  np.testing.assert_array_equal(seg, float32_result)


def test_emulated_bfloat16_runs_float32_and_says_so(setup, tmp_path, cpu, float32_result,
                                                    caplog):
  cpu(SLOW_CPU)
  caplog.set_level('INFO')
  runner, seg, settings = _segment(setup, tmp_path, engine='OPENVINO', precision='BFLOAT16')
  assert settings['precision'] == 'float32' and settings['requested_precision'] == 'bfloat16'
  assert 'emulated' in settings['note']
  assert any('running float32' in r.getMessage() for r in caplog.records)
  assert runner.engine_settings.precision == 'float32'
  np.testing.assert_array_equal(seg, float32_result)


@pytest.mark.parametrize('precision,dtype', [('bfloat16', tf.bfloat16),
                                             ('float16', tf.float16)])
def test_tensorflow_reduced_precision_casts_the_network_only(precision, dtype):
  """The dtype plumbing of the GPU path, checked on the CPU: convolutions in `dtype`, float32 out."""
  model = synthetic_ffn.build_tf_model()
  engine = tensorflow_engine.TensorFlowEngine(model, precision)
  graph = engine.predict_logits.get_concrete_function().graph
  convs = [op for op in graph.get_operations() if op.type == 'Conv3D']
  assert len(convs) == 3 and all(op.get_attr('T') == dtype for op in convs)
  rng = np.random.default_rng(0)
  shape = (2,) + synthetic_ffn.FOV_XYZ[::-1] + (1,)
  image = rng.normal(size=shape).astype(np.float32)
  seed = rng.normal(size=shape).astype(np.float32)
  out = engine.predict_logits(image, seed)
  assert out.dtype == tf.float32 and out.shape == shape
  expected = model.predict_logits(image, seed).numpy()
  assert 0 < np.max(np.abs(out.numpy() - expected)) < 1.0
  # The weights stay float32 variables.
  assert all(v.dtype == tf.float32 for v in model.named_variables().values())


def test_openvino_serves_any_batch_size_and_copies_its_output():
  model = synthetic_ffn.build_tf_model()
  engine = openvino_engine.OpenVinoEngine(model, 'float32')
  rng = np.random.default_rng(1)
  shape = (3,) + synthetic_ffn.FOV_XYZ[::-1] + (1,)
  image = rng.normal(size=shape).astype(np.float32)
  seed = rng.normal(size=shape).astype(np.float32)
  expected = model.predict_logits(image, seed).numpy()
  first = engine.predict_logits(image, seed)
  np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-5)
  kept = first.copy()
  single = engine.predict_logits(image[:1], seed[:1])
  np.testing.assert_allclose(single, expected[:1], rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(first, kept)


def test_openvino_instances_per_object_share_the_cores_and_agree(monkeypatch, caplog):
  model = synthetic_ffn.build_tf_model()
  engine = openvino_engine.OpenVinoEngine(model, 'float32')
  monkeypatch.setattr(hardware, 'usable_cpus', lambda: 4)
  objects = openvino_engine.instances(engine, 2)
  assert len(objects) == 2
  # pylint: disable=protected-access
  assert [o._own._config['INFERENCE_NUM_THREADS'] for o in objects] == [2, 2]
  assert objects[0]._own is not objects[1]._own and objects[0]._full is engine
  rng = np.random.default_rng(2)
  shape = (1,) + synthetic_ffn.FOV_XYZ[::-1] + (1,)
  image = rng.normal(size=shape).astype(np.float32)
  seed = rng.normal(size=shape).astype(np.float32)
  expected = engine.predict_logits(image, seed)
  for instance in objects:
    np.testing.assert_array_equal(instance.predict_logits(image, seed), expected)
    np.testing.assert_array_equal(instance._own.predict_logits(image, seed), expected)
  # Instances that disagree with the engine would change the objects: one at a time then.
  monkeypatch.setattr(openvino_engine, '_same_logits', lambda *args: False)
  caplog.set_level('WARNING')
  assert openvino_engine.instances(engine, 2) == [engine]
  assert any('one object at a time' in r.getMessage() for r in caplog.records)
  assert openvino_engine.instances(model, 3) == [model]  # Not converted: one at a time.
  assert tensorflow_engine.instances(model, 3) == [model]


def test_reduced_precision_needs_a_tensorflow_model(cpu):
  del cpu
  settings = engine_settings.settings_for('openvino', 'bfloat16')
  with pytest.raises(ValueError, match='NumpyModel'):
    engine_settings.build(synthetic_ffn.NumpyModel(), settings)


def test_engines_are_found_by_their_module_name():
  assert registry.names() == ('openvino', 'tensorflow')
  assert registry.module('openvino') is openvino_engine
  for name in registry.names():  # The request's enum knows every engine by name.
    assert inference_pb2.InferenceRequest.Engine.Value(name.upper())
  with pytest.raises(ValueError, match="engine 'onnx' is not known; expected one of openvino, "
                     'tensorflow'):
    registry.module('onnx')


def test_a_runner_limited_to_one_thread_compiles_openvino_with_one(setup, tmp_path, monkeypatch):
  monkeypatch.setattr(openvino_engine, '_threads', None)
  spec, ckpt, labels = setup
  text = synthetic_ffn.request_text(spec, ckpt, str(tmp_path), seed_policy='"PolicyGrid3d"',
                                    seed_policy_args=r'"{\"step\": 4, \"offsets\": [2]}"',
                                    engine='OPENVINO', precision='FLOAT32')
  with runner_lib.Runner(text_format.Parse(text, inference_pb2.InferenceRequest()),
                         threads=1) as runner:
    runner.run((0, 0, 0), labels.shape)
    request = runner.model._request_for(1)  # pylint: disable=protected-access
    assert request.get_compiled_model().get_property('INFERENCE_NUM_THREADS') == 1


@pytest.mark.parametrize('value, pinned', [('0', False), ('1', True)])
def test_openvino_pinning_follows_the_environment(setup, tmp_path, monkeypatch, value, pinned):
  monkeypatch.setenv(openvino_engine.PINNING_ENV, value)
  spec, ckpt, labels = setup
  text = synthetic_ffn.request_text(spec, ckpt, str(tmp_path), engine='OPENVINO',
                                    precision='FLOAT32')
  with runner_lib.Runner(text_format.Parse(text, inference_pb2.InferenceRequest())) as runner:
    request = runner.model._request_for(1)  # pylint: disable=protected-access
    assert request.get_compiled_model().get_property('ENABLE_CPU_PINNING') is pinned


def test_a_bad_pinning_value_is_refused(monkeypatch):
  monkeypatch.setenv(openvino_engine.PINNING_ENV, 'yes')
  with pytest.raises(errors.FFNError, match="FFN_OPENVINO_CPU_PINNING='yes': expected 0 or 1"):
    openvino_engine._pinning()  # pylint: disable=protected-access


def test_an_engine_given_a_share_of_the_cpus_does_not_pin(monkeypatch):
  monkeypatch.delenv(openvino_engine.PINNING_ENV, raising=False)
  monkeypatch.setattr(hardware, 'usable_cpus', lambda: 4)
  monkeypatch.setattr(openvino_engine, '_threads', 2)
  assert openvino_engine._pinning() == {'ENABLE_CPU_PINNING': False}  # pylint: disable=protected-access
  monkeypatch.setattr(openvino_engine, '_threads', None)
  assert openvino_engine._pinning() == {}  # pylint: disable=protected-access
