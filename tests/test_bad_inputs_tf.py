"""Hostile inputs, locks and Ctrl-C for train.py and run_inference.py (each a subprocess).

These scripts load TensorFlow (seconds per process), so each case is one
short run; see test_bad_inputs.py for the other scripts.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from bad_inputs_lib import REPO_ROOT, digest, expect_clean_failure, record_success
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
                       outputs=[train_dir / 'checkpoint'])


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
                       outputs=[train_dir / 'checkpoint'], untouched={lock: digest(lock)})


def test_train_dir_read_only(data, tmp_path):
  with tmpfs(tmp_path / 'ro', read_only=True) as ro:
    proc = run_script('train.py', *_train_args(data, ro / 'train', None, '--max_steps', '2'),
                      timeout=180)
    expect_clean_failure('train.py read-only train_dir', proc, [str(ro)],
                         outputs=[ro / 'train'])


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
  expect_clean_failure('train.py Ctrl-C', result, ['interrupted'], exit_code=130)
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
  from ffn.inference import storage  # pylint: disable=g-import-not-at-top
  out = tmp_path / 'out'
  marker = tmp_path / 'marker'
  cpoint = storage.checkpoint_path(str(out), (0, 0, 0))
  evil = np.empty((), object)
  evil[()] = _RunsCommand(marker)
  _fake_checkpoint(pathlib.Path(cpoint), SHAPE, origins=evil)
  proc = _infer(_request(data, out))
  expect_clean_failure('run_inference malicious .cpoint', proc, ['seg-0_0_0.cpoint', 'not allowed'],
                       outputs=[storage.segmentation_path(str(out), (0, 0, 0))])
  assert not marker.exists(), 'a pickle in the checkpoint ran a command'


def test_corrupt_cpoint(data, tmp_path):
  from ffn.inference import storage  # pylint: disable=g-import-not-at-top
  out = tmp_path / 'out'
  cpoint = pathlib.Path(storage.checkpoint_path(str(out), (0, 0, 0)))
  cpoint.parent.mkdir(parents=True)
  cpoint.write_bytes(b'PK\x03\x04 cut short')
  proc = _infer(_request(data, out))
  expect_clean_failure('run_inference corrupt .cpoint', proc, [str(cpoint)],
                       outputs=[storage.segmentation_path(str(out), (0, 0, 0))],
                       untouched={cpoint: digest(cpoint)})


def test_stale_cpoint_of_another_box_size(data, tmp_path):
  from ffn.inference import storage  # pylint: disable=g-import-not-at-top
  out = tmp_path / 'out'
  cpoint = pathlib.Path(storage.checkpoint_path(str(out), (0, 0, 0)))
  _fake_checkpoint(cpoint, (14, 60, 100))
  proc = _infer(_request(data, out))
  expect_clean_failure('run_inference stale .cpoint of another box', proc,
                       [str(cpoint), '(100, 60, 14)'],
                       outputs=[storage.segmentation_path(str(out), (0, 0, 0))],
                       untouched={cpoint: digest(cpoint)})


def test_non_checkpoint_file_as_checkpoint(data, tmp_path):
  out = tmp_path / 'out'
  notes = tmp_path / 'notes.txt'
  notes.write_text('not a checkpoint')
  request = synthetic_ffn.request_text(data['image'], str(notes), str(out), **GRID)
  proc = _infer(request)
  expect_clean_failure('run_inference non-checkpoint file', proc,
                       [str(notes), 'not a TensorFlow checkpoint'], outputs=[out / '0'])


@pytest.mark.parametrize('case,box,names', [
    ('negative start', 'start { x: -10 y: 0 z: 0 } size { x: 20 y: 20 z: 14 }',
     ['(-10, 0, 0)', 'negative']),
])
def test_bad_box(data, tmp_path, case, box, names):
  out = tmp_path / 'out'
  proc = _infer(_request(data, out), box)
  expect_clean_failure(f'run_inference {case}', proc, names, outputs=[out])


def test_ambiguous_4d_image(data, tmp_path):
  out = tmp_path / 'out'
  spec = synthetic_ffn.write_h5(tmp_path / 'img4.h5', np.zeros((3, 14, 60, 2), np.uint8))
  request = synthetic_ffn.request_text(spec, data['ckpt'], str(out), **GRID)
  # Both (c, z, y, x) and (z, y, x, c) hold this box, so neither shape nor box decides.
  proc = _infer(request, 'start { x: 0 y: 0 z: 0 } size { x: 2 y: 14 z: 3 }')
  expect_clean_failure('run_inference ambiguous 4-D image', proc, ['(3, 14, 60, 2)', 'ambiguous'],
                       outputs=[out])


def test_finished_box_with_other_settings(data, tmp_path):
  from ffn.inference import inference_pb2  # pylint: disable=g-import-not-at-top
  from ffn.inference import storage  # pylint: disable=g-import-not-at-top
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  out = tmp_path / 'out'
  old = text_format.Parse(_request(data, out), inference_pb2.InferenceRequest())
  old.inference_options.segment_threshold = 0.3
  seg_path = storage.segmentation_path(str(out), (0, 0, 0))
  storage.save_subvolume(np.ones(SHAPE, np.uint8), {}, seg_path,
                         request=old.SerializeToString())
  before = digest(seg_path)
  proc = _infer(_request(data, out))
  expect_clean_failure('run_inference finished box, other settings', proc,
                       [seg_path, 'inference_options', '--reuse_mismatched_results'],
                       untouched={seg_path: before})
  proc = _infer(_request(data, out), BOX, '--reuse_mismatched_results')
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert digest(seg_path) == before
  record_success('run_inference reuse with --reuse_mismatched_results')


def test_box_locked_by_a_live_run(data, tmp_path):
  from ffn.inference import storage  # pylint: disable=g-import-not-at-top
  from ffn.utils import locks  # pylint: disable=g-import-not-at-top
  out = tmp_path / 'out'
  lock = pathlib.Path(storage.subvolume_path(str(out), (0, 0, 0), 'lock'))
  lock.parent.mkdir(parents=True)
  lock.write_text(json.dumps({'host': locks.host_name(), 'pid': os.getpid(), 'since': 0}))
  proc = _infer(_request(data, out))
  expect_clean_failure('run_inference box locked', proc, [str(lock), str(os.getpid())],
                       outputs=[storage.segmentation_path(str(out), (0, 0, 0))],
                       untouched={lock: digest(lock)})


def test_read_only_output_directory(data, tmp_path):
  with tmpfs(tmp_path / 'ro', read_only=True) as ro:
    proc = _infer(_request(data, ro / 'out'))
    expect_clean_failure('run_inference read-only dir', proc, [str(ro)], outputs=[ro / 'out'])


def test_ctrl_c_saves_checkpoint_exits_130_and_resumes(data, tmp_path):
  from ffn.inference import storage  # pylint: disable=g-import-not-at-top
  out = tmp_path / 'out'
  request = _request(data, out)
  proc = _spawn('run_inference.py', f'--inference_request={request}', f'--bounding_box={BOX}')
  text = _interrupt_after(proc, 'loaded', 1.0)
  result = subprocess.CompletedProcess(proc.args, proc.returncode, text, '')
  cpoint = storage.checkpoint_path(str(out), (0, 0, 0))
  seg_path = storage.segmentation_path(str(out), (0, 0, 0))
  expect_clean_failure('run_inference Ctrl-C', result, ['interrupted', cpoint],
                       outputs=[seg_path], exit_code=130)
  assert os.path.exists(cpoint)
  proc = _infer(request)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert os.path.exists(seg_path) and not os.path.exists(cpoint)
  names = sorted(os.listdir(os.path.dirname(seg_path)))
  assert names == ['seg-0_0_0.npz', 'seg-0_0_0.prob'], names
