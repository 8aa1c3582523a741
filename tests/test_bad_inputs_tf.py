"""Hostile inputs, locks and Ctrl-C for train.py and run_inference.py (each a subprocess).

These scripts load TensorFlow (seconds per process), so each case is one
short run; see test_bad_inputs.py for the other scripts.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from bad_inputs_lib import REPO_ROOT, digest, expect_clean_failure, expect_success
from bad_inputs_lib import HUNG, record_success
from bad_inputs_lib import run_script, tmpfs

_spec = importlib.util.spec_from_file_location(
    'synthetic_ffn_for_bad_inputs', REPO_ROOT / 'tests' / 'inference' / 'synthetic_ffn.py')
synthetic_ffn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synthetic_ffn)

SHAPE = (14, 60, 120)  # zyx
BOX = 'start { x: 0 y: 0 z: 0 } size { x: 120 y: 60 z: 14 }'
GRID = dict(seed_policy='"PolicyGrid3d"',
            seed_policy_args=r'"{\"step\": 3, \"offsets\": [1, 2]}"')


class _RunsCommand:
  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return os.system, (f'touch {self.marker}',)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
  """Image and label volumes, a TF checkpoint of the synthetic model, coordinate files."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  d = tmp_path_factory.mktemp('tfdata')
  rng = np.random.RandomState(11)
  blobs = []
  for _ in range(70):
    size = rng.randint(4, 12, size=3) * np.array([1, 2, 2])
    start = [rng.randint(0, s - n) for s, n in zip(SHAPE, np.minimum(size, SHAPE))]
    blobs.append((tuple(start), tuple(np.asarray(start) + size)))
  image, labels = synthetic_ffn.blob_volume(SHAPE, blobs)
  paths = dict(image=synthetic_ffn.write_h5(d / 'image.h5', image),
               labels=synthetic_ffn.write_h5(d / 'labels.h5', labels.astype(np.uint32), 'stack'),
               ckpt=synthetic_ffn.write_tf_checkpoint(d), dir=d)

  def write_coords(name, records):
    path = str(d / name)
    with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type='GZIP')) as w:
      for center, volume in records:
        w.write(tf.train.Example(features=tf.train.Features(feature={
            'center': tf.train.Feature(int64_list=tf.train.Int64List(value=center)),
            'label_volume_name': tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[volume.encode()])),
        })).SerializeToString())
    return path

  good = [([60, 30, 7], 'v')] * 3000
  paths['coords'] = write_coords('good.rec', good)
  paths['unknown'] = write_coords('unknown.rec', good[:5] + [([60, 30, 7], 'nope')])
  paths['outside'] = write_coords('outside.rec', good[:5] + [([0, 30, 7], 'v')])
  blob = open(paths['coords'], 'rb').read()
  (d / 'truncated.rec').write_bytes(blob[:len(blob) // 2])
  paths['truncated'] = str(d / 'truncated.rec')
  (d / 'empty.rec').write_bytes(b'')
  paths['empty'] = str(d / 'empty.rec')
  return paths


def _train_args(data, train_dir, coords=None, *extra):
  return ['--train_coords', coords or data['coords'],
          '--data_volumes', f'v:{data["image"]}', '--label_volumes', f'v:{data["labels"]}',
          '--model_name', synthetic_ffn.MODEL_NAME,
          '--model_args', json.dumps(synthetic_ffn.MODEL_ARGS),
          '--image_mean', str(synthetic_ffn.IMAGE_MEAN),
          '--image_stddev', str(synthetic_ffn.IMAGE_STDDEV),
          '--permutable_axes=', '--train_dir', str(train_dir), *extra]


@pytest.mark.parametrize('case,coords,extra,names', [
    ('empty coordinates', 'empty', [], ['empty.rec', 'no coordinates']),
    ('truncated coordinates', 'truncated', [], ['truncated.rec', 'truncated']),
    ('unknown label_volume_name', 'unknown', [], ['nope']),
    ('centre outside the volume', 'outside', [], ['[0, 30, 7]']),
    ('batch_size 0', 'coords', ['--batch_size', '0'], ['--batch_size', '0']),
])
def test_train_bad_inputs(data, tmp_path, case, coords, extra, names):
  train_dir = tmp_path / 'train'
  proc = run_script('train.py', *_train_args(data, train_dir, data[coords], '--max_steps', '3',
                                             *extra), timeout=180)
  expect_clean_failure(f'train.py {case}', proc, names,
                       outputs=[train_dir / 'checkpoint'], klass='files')


def test_train_dir_locked_by_a_live_run(data, tmp_path):
  train_dir = tmp_path / 'train'
  train_dir.mkdir()
  lock = train_dir / 'train.lock'
  # This test process is alive: its lock is not stale.
  from ffn.utils import locks  # pylint: disable=g-import-not-at-top
  lock.write_text(json.dumps({'host': locks.host_name(), 'pid': os.getpid(), 'since': 0}))
  proc = run_script('train.py', *_train_args(data, train_dir, None, '--max_steps', '2'),
                    timeout=180)
  expect_clean_failure('train.py train_dir locked', proc, [str(lock), str(os.getpid())],
                       outputs=[train_dir / 'checkpoint'], untouched={lock: digest(lock)},
                       klass='locks')


def test_train_dir_read_only(data, tmp_path):
  with tmpfs(tmp_path / 'ro', read_only=True) as ro:
    proc = run_script('train.py', *_train_args(data, ro / 'train', None, '--max_steps', '2'),
                      timeout=180)
    expect_clean_failure('train.py read-only train_dir', proc, [str(ro)],
                         outputs=[ro / 'train'], klass='file systems')


def _spawn(script, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=str(REPO_ROOT))
  return subprocess.Popen([sys.executable, script, *args], cwd=REPO_ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _interrupt_after(proc, marker: str, delay: float, timeout: float = 180) -> str:
  """Sends SIGINT `delay` s after `marker` appears in the output; returns all output."""
  lines = []
  deadline = time.monotonic() + timeout
  for line in proc.stdout:
    lines.append(line)
    if marker in line:
      break
    if time.monotonic() > deadline:
      break
  time.sleep(delay)
  proc.send_signal(signal.SIGINT)
  rest, _ = proc.communicate(timeout=120)
  return ''.join(lines) + rest


def test_train_ctrl_c_saves_and_exits_130(data, tmp_path):
  train_dir = tmp_path / 'train'
  proc = _spawn('train.py', *_train_args(data, train_dir, None, '--max_steps', '1000000',
                                         '--batch_size', '1'))
  text = _interrupt_after(proc, 'Training ', 3.0)
  result = subprocess.CompletedProcess(proc.args, proc.returncode, text, '')
  expect_clean_failure('train.py Ctrl-C', result, ['interrupted'], exit_code=130,
                       klass='interrupts')
  assert list(train_dir.glob('model.ckpt-*.index')), os.listdir(train_dir)
  assert not (train_dir / 'train.lock').exists()


# ----------------------------------------------------------------------------
# run_inference.py


def _request(data, out, **extra):
  return synthetic_ffn.request_text(data['image'], data['ckpt'], str(out), **{**GRID, **extra})


def _infer(request, box=BOX, *extra):
  return run_script('run_inference.py', f'--inference_request={request}',
                    f'--bounding_box={box}', *extra, timeout=180)


def _fake_checkpoint(path, shape, **override):
  path.parent.mkdir(parents=True, exist_ok=True)
  arrays = dict(segmentation=np.zeros(shape, np.int32), seed=np.zeros(shape, np.float32),
                history=np.asarray('[]'), history_deleted=np.zeros(0, np.int64),
                movement_policy=np.asarray('null'), seed_policy_state=np.asarray('null'),
                counters=np.asarray('{}'), origins=np.asarray('{"dict": []}'))
  arrays.update(override)
  with open(path, 'wb') as f:  # np.savez would add .npz to the name.
    np.savez(f, **arrays)


def test_malicious_cpoint_runs_nothing(data, tmp_path):
  from ffn.inference.io import results  # pylint: disable=g-import-not-at-top
  out = tmp_path / 'out'
  marker = tmp_path / 'marker'
  cpoint = results.checkpoint_path(str(out), (0, 0, 0))
  evil = np.empty((), object)
  evil[()] = _RunsCommand(marker)
  _fake_checkpoint(pathlib.Path(cpoint), SHAPE, origins=evil)
  proc = _infer(_request(data, out))
  expect_clean_failure('run_inference malicious .cpoint', proc, ['seg-0_0_0.cpoint', 'not allowed'],
                       outputs=[results.segmentation_path(str(out), (0, 0, 0))],
                       klass='code in data')
  assert not marker.exists(), 'a pickle in the checkpoint ran a command'


def test_corrupt_cpoint(data, tmp_path):
  from ffn.inference.io import results  # pylint: disable=g-import-not-at-top
  out = tmp_path / 'out'
  cpoint = pathlib.Path(results.checkpoint_path(str(out), (0, 0, 0)))
  cpoint.parent.mkdir(parents=True)
  cpoint.write_bytes(b'PK\x03\x04 cut short')
  proc = _infer(_request(data, out))
  expect_clean_failure('run_inference corrupt .cpoint', proc, [str(cpoint)],
                       outputs=[results.segmentation_path(str(out), (0, 0, 0))],
                       untouched={cpoint: digest(cpoint)}, klass='files')


def test_stale_cpoint_of_another_box_size(data, tmp_path):
  from ffn.inference.io import results  # pylint: disable=g-import-not-at-top
  out = tmp_path / 'out'
  cpoint = pathlib.Path(results.checkpoint_path(str(out), (0, 0, 0)))
  _fake_checkpoint(cpoint, (14, 60, 100))
  proc = _infer(_request(data, out))
  expect_clean_failure('run_inference stale .cpoint of another box', proc,
                       [str(cpoint), '(100, 60, 14)'],
                       outputs=[results.segmentation_path(str(out), (0, 0, 0))],
                       untouched={cpoint: digest(cpoint)}, klass='resume')


def test_non_checkpoint_file_as_checkpoint(data, tmp_path):
  out = tmp_path / 'out'
  notes = tmp_path / 'notes.txt'
  notes.write_text('not a checkpoint')
  request = synthetic_ffn.request_text(data['image'], str(notes), str(out), **GRID)
  proc = _infer(request)
  expect_clean_failure('run_inference non-checkpoint file', proc,
                       [str(notes), 'not a TensorFlow checkpoint'], outputs=[out / '0'],
                       klass='models')


@pytest.mark.parametrize('case,box,names', [
    ('negative start', 'start { x: -10 y: 0 z: 0 } size { x: 20 y: 20 z: 14 }',
     ['(-10, 0, 0)', 'negative']),
])
def test_bad_box(data, tmp_path, case, box, names):
  out = tmp_path / 'out'
  proc = _infer(_request(data, out), box)
  expect_clean_failure(f'run_inference {case}', proc, names, outputs=[out], klass='boxes')


def test_ambiguous_4d_image(data, tmp_path):
  out = tmp_path / 'out'
  spec = synthetic_ffn.write_h5(tmp_path / 'img4.h5', np.zeros((3, 14, 60, 2), np.uint8))
  request = synthetic_ffn.request_text(spec, data['ckpt'], str(out), **GRID)
  # Both (c, z, y, x) and (z, y, x, c) hold this box, so neither shape nor box decides.
  proc = _infer(request, 'start { x: 0 y: 0 z: 0 } size { x: 2 y: 14 z: 3 }')
  expect_clean_failure('run_inference ambiguous 4-D image', proc, ['(3, 14, 60, 2)', 'ambiguous'],
                       outputs=[out], klass='volumes')


def test_finished_box_with_other_settings(data, tmp_path):
  from ffn.inference import inference_pb2  # pylint: disable=g-import-not-at-top
  from ffn.inference.io import results  # pylint: disable=g-import-not-at-top
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  out = tmp_path / 'out'
  old = text_format.Parse(_request(data, out), inference_pb2.InferenceRequest())
  old.inference_options.segment_threshold = 0.3
  seg_path = results.segmentation_path(str(out), (0, 0, 0))
  results.save_subvolume(np.ones(SHAPE, np.uint8), {}, seg_path,
                         request=old.SerializeToString())
  before = digest(seg_path)
  proc = _infer(_request(data, out))
  expect_clean_failure('run_inference finished box, other settings', proc,
                       [seg_path, 'inference_options', '--reuse_mismatched_results'],
                       untouched={seg_path: before}, klass='resume')
  proc = _infer(_request(data, out), BOX, '--reuse_mismatched_results')
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert digest(seg_path) == before
  record_success('run_inference reuse with --reuse_mismatched_results')


def test_box_locked_by_a_live_run(data, tmp_path):
  from ffn.inference.io import results  # pylint: disable=g-import-not-at-top
  from ffn.utils import locks  # pylint: disable=g-import-not-at-top
  out = tmp_path / 'out'
  lock = pathlib.Path(results.subvolume_path(str(out), (0, 0, 0), 'lock'))
  lock.parent.mkdir(parents=True)
  lock.write_text(json.dumps({'host': locks.host_name(), 'pid': os.getpid(), 'since': 0}))
  proc = _infer(_request(data, out))
  expect_clean_failure('run_inference box locked', proc, [str(lock), str(os.getpid())],
                       outputs=[results.segmentation_path(str(out), (0, 0, 0))],
                       untouched={lock: digest(lock)}, klass='locks')


def test_read_only_output_directory(data, tmp_path):
  with tmpfs(tmp_path / 'ro', read_only=True) as ro:
    proc = _infer(_request(data, ro / 'out'))
    expect_clean_failure('run_inference read-only dir', proc, [str(ro)], outputs=[ro / 'out'],
                         klass='file systems')


def test_ctrl_c_saves_checkpoint_exits_130_and_resumes(data, tmp_path):
  from ffn.inference.io import results  # pylint: disable=g-import-not-at-top
  out = tmp_path / 'out'
  request = _request(data, out)
  proc = _spawn('run_inference.py', f'--inference_request={request}', f'--bounding_box={BOX}')
  text = _interrupt_after(proc, 'loaded', 1.0)
  result = subprocess.CompletedProcess(proc.args, proc.returncode, text, '')
  cpoint = results.checkpoint_path(str(out), (0, 0, 0))
  seg_path = results.segmentation_path(str(out), (0, 0, 0))
  expect_clean_failure('run_inference Ctrl-C', result, ['interrupted', cpoint],
                       outputs=[seg_path], exit_code=130, klass='interrupts')
  assert os.path.exists(cpoint)
  proc = _infer(request)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert os.path.exists(seg_path) and not os.path.exists(cpoint)
  names = sorted(os.listdir(os.path.dirname(seg_path)))
  assert names == ['seg-0_0_0.npz', 'seg-0_0_0.prob'], names


# ----------------------------------------------------------------------------
# Inputs that once ended in exit 0 and a wrong or empty result: each refused
# before any output exists, with one line naming the value.


def _refused(case, proc, names, out, klass, **kwargs):
  return expect_clean_failure(case, proc, names, outputs=[out / '0'], klass=klass, **kwargs)


@pytest.mark.parametrize('case,box,names', [
    ('box beyond the image in x', 'start { x: 100 y: 0 z: 0 } size { x: 30 y: 20 z: 14 }',
     ['(100, 0, 0)', 'beyond the image volume of size (120, 60, 14)']),
    ('box larger than the image', 'start { x: 0 y: 0 z: 0 } size { x: 120 y: 60 z: 20 }',
     ['(120, 60, 20)', 'beyond the image volume']),
    ('box starting past the image', 'start { x: 0 y: 70 z: 0 } size { x: 20 y: 20 z: 14 }',
     ['(0, 70, 0)', 'beyond the image volume']),
    ('box narrower than the FOV', 'start { x: 0 y: 0 z: 0 } size { x: 8 y: 30 z: 14 }',
     ['(8, 30, 14)', "model's field of view (9, 7, 5)"]),
    ('box of one voxel', 'start { x: 5 y: 5 z: 5 } size { x: 1 y: 1 z: 1 }',
     ['(1, 1, 1)', "field of view"]),
])
def test_box_that_cannot_be_segmented(data, tmp_path, case, box, names):
  out = tmp_path / 'out'
  _refused(f'run_inference {case}', _infer(_request(data, out), box), names, out, 'boxes')


def test_blockwise_blocks_smaller_than_the_fov(data, tmp_path):
  out = tmp_path / 'out'
  proc = run_script('run_blockwise_inference.py', f'--inference_request={_request(data, out)}',
                    f'--bounding_box={BOX}', '--subvolume_size', '60,30,4', '--overlap', '2,2,2',
                    '--output_volume', f'{tmp_path}/stitched.h5:seg', timeout=180)
  expect_clean_failure('blockwise blocks smaller than the FOV', proc,
                       ['(60, 30, 4)', "field of view (9, 7, 5)"],
                       outputs=[out, tmp_path / 'stitched.h5'], klass='boxes')


@pytest.mark.parametrize('field,value,names', [
    ('image_stddev', 'nan', ['InferenceRequest.image_stddev is nan', '> 0']),
    ('image_stddev', '-33', ['InferenceRequest.image_stddev is -33']),
    ('image_mean', 'inf', ['InferenceRequest.image_mean is inf', 'finite']),
    ('batch_size', '-2', ['InferenceRequest.batch_size is -2']),
    ('checkpoint_interval', '-5', ['InferenceRequest.checkpoint_interval is -5']),
    ('inference_options', '{ init_activation: 0.95 pad_value: 0.05 move_threshold: 0.9 '
     'segment_threshold: 1.5 }', ['segment_threshold is 1.5', '(0, 1)']),
    ('inference_options', '{ init_activation: 0.95 pad_value: 0.05 move_threshold: 0.9 '
     'segment_threshold: 0.6 consistency_threshold: nan }', ['consistency_threshold is nan']),
    ('inference_options', '{ init_activation: 0.95 pad_value: 0.05 move_threshold: 0.9 '
     'segment_threshold: 0.6 min_boundary_dist { x: -1 y: 1 z: 1 } }',
     ['min_boundary_dist', '-1']),
    ('masks', '{ image { channels { channel: 0 min_value: nan max_value: 10 } } }',
     ['InferenceRequest.masks[0] channels[0].min_value is nan']),
])
def test_request_numbers(data, tmp_path, field, value, names):
  out = tmp_path / 'out'
  text = _request(data, out)
  if field == 'inference_options':
    text = text[:text.index('inference_options')] + f'inference_options {value}'
  elif value.startswith('{'):
    text += f'\n{field} {value}'
  else:
    lines = [line for line in text.splitlines() if not line.startswith(f'{field}:')]
    text = '\n'.join(lines + [f'{field}: {value}'])
  _refused(f'run_inference {field} {value[:40]}', _infer(text), names, out, 'numbers')


def _float_image(tmp_path, bad_value):
  image, _ = synthetic_ffn.blob_volume(SHAPE, [((2, 10, 20), (12, 40, 80))])
  image = image.astype(np.float32)
  image[3, 11, 21] = bad_value
  return synthetic_ffn.write_h5(tmp_path / 'float_image.h5', image)


@pytest.mark.parametrize('case', ['NaN voxel', 'infinite voxel', 'init_segmentation of another '
                                  'shape', 'float init_segmentation', 'complex image'])
def test_volumes_of_the_request(data, tmp_path, case):
  out = tmp_path / 'out'
  if case in ('NaN voxel', 'infinite voxel'):
    spec = _float_image(tmp_path, np.nan if case == 'NaN voxel' else np.inf)
    request = synthetic_ffn.request_text(spec, data['ckpt'], str(out), **GRID)
    names = ['1 NaN or infinite voxels', '(21, 11, 3)']
  elif case == 'complex image':
    spec = synthetic_ffn.write_h5(tmp_path / 'c.h5', np.zeros(SHAPE, np.complex64))
    request = synthetic_ffn.request_text(spec, data['ckpt'], str(out), **GRID)
    names = ['complex64', 'intensities']
  else:
    seg = (np.zeros(SHAPE[:2] + (100,), np.uint32) if 'shape' in case
           else np.zeros(SHAPE, np.float32))
    spec = synthetic_ffn.write_h5(tmp_path / 'init.h5', seg, 'seg')
    request = _request(data, out) + f'\ninit_segmentation {{ hdf5: "{spec}" }}'
    names = (['init_segmentation has shape (100, 60, 14)', '(120, 60, 14)'] if 'shape' in case
             else ['init_segmentation is float32', 'integer'])
  _refused(f'run_inference {case}', _infer(request), names, out, 'volumes')


@pytest.mark.parametrize('field,value,names', [
    ('seed_policy_args', {'stepp': 3}, ["'stepp'", 'PolicyGrid3d does not take', "'step'"]),
    ('seed_policy_args', {'step': '3'}, ["'step' is '3'", 'expects a int']),
    ('seed_policy_args', {'step': 0}, ["'step'", 'an integer >= 1']),
    ('seed_policy_args', {'offsets': [1, -2]}, ["'offsets'", '-2']),
    ('seed_policy_args', {'corner': [0, 0, 0]}, ["'corner'", 'the runner sets itself']),
    ('movement_policy_args', {'deltass': [1, 1, 1]}, ["'deltass'", 'FaceMaxMovementPolicy']),
    ('movement_policy_args', {'score_threshold': 'high'}, ["'score_threshold' is 'high'"]),
])
def test_policy_arguments(data, tmp_path, field, value, names):
  out = tmp_path / 'out'
  extra = dict(GRID)
  if field == 'seed_policy_args':
    extra['seed_policy_args'] = json.dumps(json.dumps(value))
  else:
    extra['movement_policy_args'] = json.dumps(json.dumps(value))
  request = synthetic_ffn.request_text(data['image'], data['ckpt'], str(out), **extra)
  _refused(f'run_inference {field} {value}', _infer(request), names, out, 'arguments')


@pytest.mark.parametrize('field,name', [('movement_policy_name', 'this.Foo'),
                                        ('seed_policy', 'this.Bar'),
                                        ('model_name', 'this.Model')])
def test_class_names_never_import_modules_without_them(data, tmp_path, field, name):
  out = tmp_path / 'out'
  request = synthetic_ffn.request_text(data['image'], data['ckpt'], str(out))
  if field == 'model_name':
    request = request.replace(f'model_name: "{synthetic_ffn.MODEL_NAME}"',
                              f'model_name: "{name}"')
  else:
    request += f'\n{field}: "{name}"'
  text = _refused(f'run_inference {field} {name}', _infer(request),
                  [name, "module 'this' has no"], out, 'arguments')
  assert 'Beautiful is better than ugly' not in text  # What importing `this` prints.


@pytest.fixture(scope='module')
def deeper_checkpoint(data):
  """A checkpoint of the synthetic model with two conv modules (depth 2) instead of one."""
  from ffn.training import checkpoint  # pylint: disable=g-import-not-at-top
  from ffn.training import import_util  # pylint: disable=g-import-not-at-top
  args = dict(synthetic_ffn.MODEL_ARGS, depth=2)
  model = import_util.build_model(synthetic_ffn.MODEL_NAME, json.dumps(args), batch_size=1)
  return checkpoint.make_checkpoint(model).write(str(data['dir'] / 'deeper' / 'model.ckpt-1'))


@pytest.mark.parametrize('case', ['a deeper checkpoint', 'more features', 'truncated data',
                                  'a 2 MB model name'])
def test_model_and_checkpoint_must_match(data, deeper_checkpoint, tmp_path, case):
  out = tmp_path / 'out'
  ckpt = data['ckpt']
  request = None
  if case == 'a deeper checkpoint':
    ckpt = deeper_checkpoint
    names = ["holds variable 'model/conv1_a/", 'which the model does not have']
  elif case == 'more features':
    args = json.dumps(json.dumps(dict(synthetic_ffn.MODEL_ARGS, features=2)))
    request = _request(data, out).replace(
        'model_args: ' + json.dumps(json.dumps(synthetic_ffn.MODEL_ARGS)), f'model_args: {args}')
    names = ['has shape [3, 3, 3, 2, 1] in checkpoint', 'expects [3, 3, 3, 2, 2]']
  elif case == 'truncated data':
    prefix = tmp_path / 'cut' / 'model.ckpt-1'
    prefix.parent.mkdir()
    for source in pathlib.Path(data['ckpt']).parent.glob('model.ckpt-1.*'):
      blob = source.read_bytes()
      (prefix.parent / source.name).write_bytes(blob[:len(blob) // 2] if 'data' in source.name
                                                else blob)
    ckpt = str(prefix)
    names = [str(prefix), 'truncated or corrupt']
  else:
    request = _request(data, out).replace(f'model_name: "{synthetic_ffn.MODEL_NAME}"',
                                          'model_name: "' + 'm' * 2_000_000 + '.Model"')
    names = ['characters]']
  if request is None:
    request = synthetic_ffn.request_text(data['image'], ckpt, str(out), **GRID)
  # A 2 MB request does not fit one command-line argument: it comes in a flag file.
  flagfile = tmp_path / 'flags.txt'
  flagfile.write_text(f'--inference_request={request.replace(chr(10), " ")}\n'
                      f'--bounding_box={BOX}\n')
  proc = run_script('run_inference.py', f'--flagfile={flagfile}', timeout=180)
  _refused(f'run_inference {case}', proc, names, out, 'models')


def _finished_cpoint(data, tmp_path, request_text):
  """A real checkpoint of `request_text` on BOX, left by a run stopped after its first object."""
  from ffn.inference import inference_pb2  # pylint: disable=g-import-not-at-top
  from ffn.inference.request import runner as runner_lib  # pylint: disable=g-import-not-at-top
  from ffn.inference.io import results  # pylint: disable=g-import-not-at-top
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  request = text_format.Parse(request_text, inference_pb2.InferenceRequest())
  runner = runner_lib.Runner()
  runner.start(request)
  try:
    canvas, _ = runner.make_canvas((0, 0, 0), SHAPE)
    path = results.checkpoint_path(request.segmentation_output_dir, (0, 0, 0))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    canvas.save_checkpoint(path)
  finally:
    runner.stop_executor()
  return pathlib.Path(path)


@pytest.mark.parametrize('change,names', [
    ('segment_threshold: 0.6', ['segment_threshold: 0.7', 'inference_options']),
    ('seed_policy: "PolicyGrid3d"', ['seed_policy: "PolicyGrid2d"', 'seed_policy']),
])
def test_cpoint_resumed_under_other_settings(data, tmp_path, change, names):
  out = tmp_path / 'out'
  request = _request(data, out)
  cpoint = _finished_cpoint(data, tmp_path, request)
  before = digest(cpoint)
  changed = request.replace(change, names[0]) if change in request else request
  assert changed != request
  proc = _infer(changed)
  expect_clean_failure(f'run_inference resume with {names[0]}', proc,
                       [str(cpoint), 'other settings', names[1]],
                       outputs=[out / '0' / '0' / 'seg-0_0_0.npz'], untouched={cpoint: before},
                       klass='resume')
  # Fields that do not change the result may differ.
  with expect_success('run_inference resume with another checkpoint_interval', 'resume'):
    proc = _infer(request + '\ncheckpoint_interval: 7')
    assert proc.returncode == 0, proc.stderr[-2000:]


def _crafted(path, shape, **override):
  """The real checkpoint at `path` with some entries replaced."""
  with np.load(path) as data:
    arrays = {k: data[k] for k in data.files}
  arrays.update(override)
  with open(path, 'wb') as f:
    np.savez(f, **arrays)


@pytest.mark.parametrize('entry,value,names', [
    ('seed_policy_state', '{"tuple": [null, 5]}', None),
    ('seed_policy_state', 'bad-index', ["'seed_policy_state'", 'seed index 999']),
    ('movement_policy', '{"tuple": [1, 2]}', ["'movement_policy'", 'malformed']),
    ('origins', '[1, 2, 3]', ["'origins'", 'not a table of segment origins']),
    ('history', '[[1, 2]]', ["'history'", 'not a zyx position']),
    ('segmentation', 'float', ["'segmentation'", 'float32']),
    ('seed', 'small', ["'seed'", 'expected shape (120, 60, 14)']),
    ('counters', '{"a": "b"}', ["'counters'", 'not a JSON object of numbers']),
    ('partial_segment_iters', 'text', ["'partial_segment_iters'", 'not an integer']),
])
def test_crafted_cpoint_states(data, tmp_path, entry, value, names):
  out = tmp_path / 'out'
  request = _request(data, out)
  cpoint = _finished_cpoint(data, tmp_path, request)
  if value == 'bad-index':
    override = {entry: np.asarray(json.dumps({'tuple': [
        {'array': '<i8', 'shape': [1, 3], 'data': 'AQAAAAAAAAACAAAAAAAAAAMAAAAAAAAA'}, 999]}))}
  elif value == 'float':
    override = {entry: np.zeros(SHAPE, np.float32)}
  elif value == 'small':
    override = {entry: np.zeros((2, 2, 2), np.float32)}
  elif value == 'text':
    override = {entry: np.asarray('three')}
  else:
    override = {entry: np.asarray(value)}
  _crafted(cpoint, SHAPE, **override)
  before = digest(cpoint)
  proc = _infer(request)
  if names is None:  # (None, idx) is a state the base policy writes before its first seed.
    with expect_success(f'run_inference .cpoint with {entry} {value}', 'files'):
      assert proc.returncode == 0, proc.stderr[-2000:]
    return
  expect_clean_failure(f'run_inference crafted .cpoint {entry}', proc, [str(cpoint), *names],
                       outputs=[out / '0' / '0' / 'seg-0_0_0.npz'], untouched={cpoint: before},
                       klass='files')


def test_own_cpoint_reads_with_allow_cpoint(data, tmp_path):
  from ffn.inference.io import results  # pylint: disable=g-import-not-at-top
  out = tmp_path / 'out'
  _finished_cpoint(data, tmp_path, _request(data, out))
  seg, origins = results.load_segmentation(str(out), (0, 0, 0), allow_cpoint=True)
  assert seg.shape == SHAPE and seg.dtype == np.uint64 and isinstance(origins, dict)


@pytest.mark.parametrize('content', [b'', b'{"host": "h", "pi', b'\x00\xff garbage'])
def test_unreadable_lock_is_stale(data, tmp_path, content):
  from ffn.inference.io import results  # pylint: disable=g-import-not-at-top
  out = tmp_path / 'out'
  lock = pathlib.Path(results.subvolume_path(str(out), (0, 0, 0), 'lock'))
  lock.parent.mkdir(parents=True)
  lock.write_bytes(content)  # What a disk full while writing a lock once left.
  with expect_success(f'run_inference over a lock holding {content[:8]!r}', 'locks'):
    proc = _infer(_request(data, out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert os.path.exists(results.segmentation_path(str(out), (0, 0, 0))) and not lock.exists()


# ----------------------------------------------------------------------------
# train.py: flags in range before any step, and train_dirs resumed only by their own model.


@pytest.mark.parametrize('extra,names,klass', [
    (['--threshold', '1.5'], ['--threshold=1.5', '(0, 0.95]'], 'hangs'),
    (['--threshold', '0.96'], ['--threshold=0.96'], 'hangs'),
    (['--threshold', 'nan'], ['--threshold=nan'], 'hangs'),
    (['--seed_pad', '1'], ['--seed_pad=1'], 'numbers'),
    (['--learning_rate', 'nan'], ['--learning_rate=nan'], 'numbers'),
    (['--momentum', '2'], ['--momentum=2'], 'numbers'),
    (['--epsilon', '0'], ['--epsilon=0'], 'numbers'),
    (['--image_stddev', '0'], ['--image_stddev=0'], 'numbers'),
    (['--image_mean', 'inf'], ['--image_mean=inf'], 'numbers'),
    (['--fov_moves', '-1'], ['--fov_moves=-1'], 'numbers'),
    (['--image_offset_scale_map', 'v:0:nan'], ['v:0:nan', 'finite scale'], 'numbers'),
])
def test_train_flags_in_range(data, tmp_path, extra, names, klass):
  train_dir = tmp_path / 'train'
  proc = run_script('train.py', *_train_args(data, train_dir, None, '--max_steps', '3', *extra),
                    timeout=120)
  expect_clean_failure(f'train.py {" ".join(extra)}', proc, names,
                       outputs=[train_dir / 'checkpoint'], klass=klass)


@pytest.fixture(scope='module')
def trained_dir(data, tmp_path_factory):
  """A train_dir after 2 steps of the synthetic model (sgd)."""
  train_dir = tmp_path_factory.mktemp('trained') / 'train'
  proc = run_script('train.py', *_train_args(data, train_dir, None, '--max_steps', '2'),
                    timeout=180)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return train_dir


@pytest.mark.parametrize('case,change,names', [
    ('another fov_size', {'fov_size': [9, 7, 7]}, ['--model_args', 'fov_size', '[9, 7, 5]']),
    ('other deltas', {'deltas': [1, 1, 1]}, ['--model_args', 'deltas']),
    ('a deeper model', {'depth': 2}, ['--model_args', 'depth']),
    ('another optimizer', '--optimizer=adam', ['--optimizer', "'sgd' there"]),
    ('another optimizer, no flags file', '--optimizer=momentum',
     ['another optimizer than --optimizer momentum']),
    ('truncated checkpoint', 'truncate', ['truncated or corrupt']),
])
def test_train_dir_resumed_only_by_its_model(data, trained_dir, tmp_path, case, change, names):
  train_dir = tmp_path / 'train'
  shutil.copytree(trained_dir, train_dir)
  extra = []
  args = _train_args(data, train_dir, None, '--max_steps', '4')
  if isinstance(change, dict):
    model_args = json.dumps(dict(synthetic_ffn.MODEL_ARGS, **change))
    args[args.index('--model_args') + 1] = model_args
  elif change == 'truncate':
    for path in train_dir.glob('model.ckpt-2.data*'):
      path.write_bytes(path.read_bytes()[:100])
  else:
    extra = [change]
    if 'no flags file' in case:
      for path in train_dir.glob('flags.*'):
        path.unlink()
  before = digest(train_dir)
  proc = run_script('train.py', *args, *extra, timeout=180)
  expect_clean_failure(f'train.py resume with {case}', proc, names,
                       untouched={train_dir: before}, klass='resume' if 'trunc' not in case
                       else 'models')
  assert len(proc.stderr) < 3000, proc.stderr[-3000:]


def test_train_float_labels(data, tmp_path):
  labels = synthetic_ffn.write_h5(tmp_path / 'float_labels.h5',
                                  h5py.File(data['labels'].rsplit(':', 1)[0])['stack'][...]
                                  .astype(np.float32), 'stack')
  train_dir = tmp_path / 'train'
  args = _train_args(data, train_dir, None, '--max_steps', '2')
  args[args.index('--label_volumes') + 1] = f'v:{labels}'
  proc = run_script('train.py', *args, timeout=180)
  expect_clean_failure('train.py float labels', proc, ['float32', 'integer object ids'],
                       outputs=[train_dir / 'checkpoint'], klass='volumes')


def test_mask_volume_smaller_than_the_box(data, tmp_path):
  out = tmp_path / 'out'
  spec = synthetic_ffn.write_h5(tmp_path / 'mask.h5', np.zeros((14, 60, 60), np.uint8), 'mask')
  request = _request(data, out) + (f'\nmasks {{ volume {{ mask {{ hdf5: "{spec}" }} '
                                   'channels { channel: 0 min_value: 1 max_value: 255 } } }')
  _refused('run_inference mask volume smaller than the box', _infer(request),
           ['masks[0].volume.mask has shape (60, 60, 14)', 'must cover the box'], out, 'volumes')


def test_a_bug_inside_inference_keeps_its_traceback(data, tmp_path):
  out = tmp_path / 'out'
  request = _request(data, out) + '\nmovement_policy_name: "tests.inference.buggy_policy.BuggyPolicy"'
  proc = _infer(request)
  assert proc.returncode not in (0, HUNG)
  assert 'Traceback' in proc.stderr and 'ValueError: a bug in the movement policy' in proc.stderr
  # Bad input in the same place stays one line.
  request = _request(data, out) + '\nmovement_policy_name: "tests.inference.buggy_policy.Nope"'
  proc = _infer(request)
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr
  assert "module 'tests.inference.buggy_policy' has no 'Nope'" in proc.stderr
