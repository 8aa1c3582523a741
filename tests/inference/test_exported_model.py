"""A model exported once for OpenVINO segments as the one converted at start, without TensorFlow."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

from google.protobuf import text_format
import numpy as np
import pytest

from ffn.inference import inference_pb2
from ffn.inference import model_export
from ffn.inference.engines import exported_model
from ffn.inference.engines import openvino_engine
from ffn.inference.io import results
from ffn.inference.request import runner as runner_lib

import synthetic_ffn

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL_ARGS = json.dumps(synthetic_ffn.MODEL_ARGS)
GRID = r'"{\"step\": 4, \"offsets\": [2]}"'

# Makes TensorFlow and Keras unimportable in a Python started with this directory first on
# PYTHONPATH, and records at exit which of their modules (and ffn.training's) were loaded.
_BLOCKER = '''
import atexit, json, os, sys
class _NoTensorFlow:
  def find_spec(self, name, path=None, target=None):
    if name.split('.')[0] in ('tensorflow', 'keras'):
      raise ImportError(f'{name} is blocked: this run must not need TensorFlow')
    return None
sys.meta_path.insert(0, _NoTensorFlow())
def _report():
  loaded = sorted(m for m in sys.modules
                  if m.split('.')[0] in ('tensorflow', 'keras') or m.startswith('ffn.training'))
  path = os.path.join(os.environ['FFN_TEST_MODULES_DIR'], f'{os.getpid()}.json')
  with open(path, 'w') as f:
    json.dump({'argv': sys.argv, 'loaded': loaded}, f)
atexit.register(_report)
'''


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  """(image spec, checkpoint prefix, labels, exported .xml) shared by the tests of this module."""
  root = tmp_path_factory.mktemp('exported')
  spec, ckpt, labels = synthetic_ffn.write_blob_setup(root)
  model = model_export.export_model(synthetic_ffn.MODEL_NAME, MODEL_ARGS, ckpt,
                                    str(root / 'export' / 'model.xml'))
  return spec, ckpt, labels, model.xml_path


def _request(spec, model_path, out_dir, **extra) -> str:
  return synthetic_ffn.request_text(spec, model_path, str(out_dir), seed_policy='"PolicyGrid3d"',
                                    seed_policy_args=GRID, **extra)


def _segment(text, labels, out_dir):
  runner = runner_lib.Runner(text_format.Parse(text, inference_pb2.InferenceRequest()))
  with runner:
    runner.run((0, 0, 0), labels.shape)
  seg, _ = results.load_segmentation(str(out_dir), (0, 0, 0), split_cc=False)
  return seg


def test_export_writes_float32_model_geometry_and_settings(setup):
  _, ckpt, _, xml = setup
  model = exported_model.load(xml)
  assert model.info == synthetic_ffn.build_tf_model().info
  assert (model.model_name, model.model_args) == (synthetic_ffn.MODEL_NAME,
                                                  synthetic_ffn.MODEL_ARGS)
  assert (model.checkpoint_path, model.checkpoint_step) == (ckpt, 0)
  # float32 weights: the precision stays a compile hint of each request.
  weights = sum(int(np.prod(v.shape)) for v in synthetic_ffn.build_tf_model().trainable_variables)
  assert os.path.getsize(model.bin_path) >= 4 * weights
  assert exported_model.load(xml[:-4] + '.json') == model  # The sidecar names it as well.


def test_exported_model_gives_the_logits_and_segmentation_converted_at_start(setup, tmp_path):
  spec, ckpt, labels, xml = setup
  tf_model = synthetic_ffn.build_tf_model()
  at_start = openvino_engine.OpenVinoEngine(tf_model, 'float32')
  from_file = openvino_engine.OpenVinoEngine(exported_model.load(xml), 'float32')
  rng = np.random.default_rng(1)
  shape = (3,) + tuple(synthetic_ffn.FOV_XYZ[::-1]) + (1,)
  image, seed = rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)
  np.testing.assert_array_equal(from_file.predict_logits(image, seed),
                                at_start.predict_logits(image, seed))

  converted = _segment(_request(spec, ckpt, tmp_path / 'a', engine='OPENVINO'), labels,
                       tmp_path / 'a')
  exported = _segment(_request(spec, xml, tmp_path / 'b', engine='OPENVINO'), labels,
                      tmp_path / 'b')
  assert len(np.unique(converted)) > 2  # Several objects, not an empty result.
  np.testing.assert_array_equal(exported, converted)


def _without_tensorflow(tmp_path, args):
  """Runs `python args` with TensorFlow unimportable; (result, module reports of each process)."""
  prelude = tmp_path / 'no_tf'
  reports = tmp_path / 'modules'
  prelude.mkdir()
  reports.mkdir()
  (prelude / 'sitecustomize.py').write_text(_BLOCKER)
  env = dict(os.environ, PYTHONPATH=f'{prelude}{os.pathsep}{REPO_ROOT}',
             FFN_TEST_MODULES_DIR=str(reports))
  result = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
  found = [json.loads(p.read_text()) for p in sorted(reports.glob('*.json'))]
  return result, found


def test_the_blocker_really_blocks_tensorflow(tmp_path):
  result, found = _without_tensorflow(tmp_path, ['-c', 'import tensorflow'])
  assert result.returncode != 0 and 'tensorflow is blocked' in result.stderr
  assert len(found) == 1


def test_run_inference_from_the_exported_model_needs_no_tensorflow(setup, tmp_path):
  spec, _, labels, xml = setup
  text = _request(spec, xml, tmp_path / 'seg', engine='OPENVINO', precision='BFLOAT16')
  size = labels.shape[::-1]
  result, found = _without_tensorflow(tmp_path, [
      'run_inference.py', f'--inference_request={text}',
      f'--bounding_box=start {{ x:0 y:0 z:0 }} size {{ x:{size[0]} y:{size[1]} z:{size[2]} }}'])
  assert result.returncode == 0, result.stderr[-3000:]
  assert [r['loaded'] for r in found] == [[]]
  seg, _ = results.load_segmentation(str(tmp_path / 'seg'), (0, 0, 0), split_cc=False)
  assert len(np.unique(seg)) > 2


def test_blockwise_workers_run_the_exported_model_without_tensorflow(setup, tmp_path):
  spec, _, labels, xml = setup
  text = _request(spec, xml, tmp_path / 'seg', engine='OPENVINO')
  size = labels.shape[::-1]
  result, found = _without_tensorflow(tmp_path, [
      'run_blockwise_inference.py', f'--inference_request={text}',
      f'--output_volume={tmp_path}/stitched.h5:seg', '--subvolume_size=32,28,20',
      '--overlap=16,16,0',
      f'--bounding_box=start {{ x:0 y:0 z:0 }} size {{ x:{size[0]} y:{size[1]} z:{size[2]} }}',
      '--worker_command={command}', '--min_overlap_size=10'])
  assert result.returncode == 0, result.stderr[-3000:]
  workers = [r for r in found if 'ffn.blockwise.worker' in ' '.join(r['argv'])
             or r['argv'][0].endswith('worker.py')]
  assert workers, [r['argv'] for r in found]  # Inference ran in launched worker processes.
  assert all(r['loaded'] == [] for r in found), found
  assert len(list((tmp_path / 'seg').rglob('seg-*.npz'))) == 4


def test_tensorflow_engine_with_an_exported_model_is_refused(setup, tmp_path):
  spec, ckpt, _, xml = setup
  text = _request(spec, xml, tmp_path, engine='TENSORFLOW')
  with pytest.raises(exported_model.ExportedModelError,
                     match=r'exported for OpenVINO, which engine TENSORFLOW cannot run.*'
                           + ckpt.replace('.', r'\.')):
    runner_lib.Runner(text_format.Parse(text, inference_pb2.InferenceRequest()))


def test_a_missing_exported_model_is_named(setup, tmp_path):
  spec, _, _, _ = setup
  text = _request(spec, str(tmp_path / 'none.xml'), tmp_path, engine='OPENVINO')
  with pytest.raises(exported_model.ExportedModelError, match=r"none\.xml' does not exist"):
    runner_lib.Runner(text_format.Parse(text, inference_pb2.InferenceRequest()))


def test_a_request_for_another_model_is_a_mismatch(setup, tmp_path):
  spec, _, _, xml = setup
  other = dict(synthetic_ffn.MODEL_ARGS, depth=3)
  text = _request(spec, xml, tmp_path, engine='OPENVINO').replace(
      MODEL_ARGS.replace('"', r'\"'), json.dumps(other).replace('"', r'\"'))
  assert '"depth\\": 3' in text
  with pytest.raises(exported_model.ExportedModelError, match='mismatched model: .*model_args'):
    runner_lib.Runner(text_format.Parse(text, inference_pb2.InferenceRequest()))
  text = _request(spec, xml, tmp_path, engine='OPENVINO').replace(
      synthetic_ffn.MODEL_NAME, 'other_module.OtherModel')
  with pytest.raises(exported_model.ExportedModelError, match='mismatched model: .*model_name'):
    runner_lib.Runner(text_format.Parse(text, inference_pb2.InferenceRequest()))
  # The short and the dotted spelling of the exported model's name are the same model.
  text = _request(spec, xml, tmp_path, engine='OPENVINO').replace(
      synthetic_ffn.MODEL_NAME, 'ffn.training.models.' + synthetic_ffn.MODEL_NAME)
  runner_lib.Runner(text_format.Parse(text, inference_pb2.InferenceRequest()))


def test_the_sidecar_of_another_model_is_refused(setup, tmp_path):
  spec, ckpt, _, xml = setup
  other_args = json.dumps(dict(synthetic_ffn.MODEL_ARGS, features=2))
  other = model_export.export_model(synthetic_ffn.MODEL_NAME, other_args, _other_checkpoint(
      tmp_path, other_args), str(tmp_path / 'other' / 'model.xml'))
  mixed = tmp_path / 'mixed'
  mixed.mkdir()
  for source, name in ((xml, 'model.xml'), (exported_model.paths(xml)[1], 'model.bin'),
                       (exported_model.paths(other.xml_path)[2], 'model.json')):
    (mixed / name).write_bytes(pathlib.Path(source).read_bytes())
  with pytest.raises(exported_model.ExportedModelError, match='sidecar belongs to another model'):
    exported_model.load(str(mixed / 'model.xml'))
  del spec, ckpt


def _other_checkpoint(tmp_path, model_args) -> str:
  """A checkpoint of the test model with other arguments."""
  # pylint: disable=g-import-not-at-top
  from ffn.training import checkpoint
  from ffn.training import import_util
  # pylint: enable=g-import-not-at-top
  model = import_util.build_model(synthetic_ffn.MODEL_NAME, model_args)
  return checkpoint.make_checkpoint(model).write(str(tmp_path / 'other-ckpt' / 'model.ckpt-1'))


def test_export_refuses_to_overwrite_files_it_did_not_write(setup, tmp_path):
  _, ckpt, _, _ = setup
  foreign = tmp_path / 'model.xml'
  foreign.write_text('<net/>')
  with pytest.raises(exported_model.ExportedModelError, match='refusing to overwrite'):
    model_export.export_model(synthetic_ffn.MODEL_NAME, MODEL_ARGS, ckpt, str(foreign))
  assert foreign.read_text() == '<net/>'
  with pytest.raises(exported_model.ExportedModelError, match='must name the .xml'):
    model_export.export_model(synthetic_ffn.MODEL_NAME, MODEL_ARGS, ckpt, str(tmp_path / 'm'))
  # An earlier export is replaced.
  ours = str(tmp_path / 'again' / 'model.xml')
  first = model_export.export_model(synthetic_ffn.MODEL_NAME, MODEL_ARGS, ckpt, ours)
  assert model_export.export_model(synthetic_ffn.MODEL_NAME, MODEL_ARGS, ckpt, ours) == first


def test_export_script_fails_in_one_line_on_bad_flags(setup, tmp_path):
  _, ckpt, _, _ = setup
  def run(*args):
    return subprocess.run([sys.executable, str(REPO_ROOT / 'export_model.py'), *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          check=False)
  both = run('--inference_request=model_name: "x.Y"', '--model_name=x.Y',
             f'--output={tmp_path}/m.xml')
  assert both.returncode == 1 and 'not both' in both.stderr
  assert 'Traceback' not in both.stderr
  missing = run(f'--model_name={synthetic_ffn.MODEL_NAME}', f'--model_args={MODEL_ARGS}',
                f'--model_checkpoint_path={tmp_path}/none', f'--output={tmp_path}/m.xml')
  assert missing.returncode == 1 and 'Traceback' not in missing.stderr
  assert 'none' in missing.stderr.strip().splitlines()[-1]
  made = run(f'--model_name={synthetic_ffn.MODEL_NAME}', f'--model_args={MODEL_ARGS}',
             f'--model_checkpoint_path={ckpt}', f'--output={tmp_path}/ok/m.xml')
  assert made.returncode == 0, made.stderr[-2000:]
  assert exported_model.load(str(tmp_path / 'ok' / 'm.xml')).checkpoint_path == ckpt
