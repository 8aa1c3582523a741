"""run_inference.py end to end on the bundled sample, and its handling of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from skimage.metrics import variation_of_information

from ffn.inference.io import results

from conftest import REPO_ROOT, SAMPLE_DIR

CONFIG = (REPO_ROOT / 'configs' / 'inference_training_sample2.pbtxt').read_text()
CROP = 'start { x: 0 y: 0 z: 0 } size { x: 60 y: 60 z: 40 }'


def _run(request_text, bbox=CROP, extra=()):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  return subprocess.run(
      [sys.executable, 'run_inference.py', f'--inference_request={request_text}',
       f'--bounding_box={bbox}', *extra],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def _config(out_dir, old=None, new=None):
  text = CONFIG.replace('results/fib25/training2', str(out_dir))
  if old is not None:
    assert old in text
    text = text.replace(old, new)
  return text


def test_bundled_sample_crop_end_to_end(tmp_path):
  out = tmp_path / 'fib25'
  proc = _run(_config(out), extra=['--inference_options=init_activation: 0.95'])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (out / '0' / '0' / 'seg-0_0_0.npz').exists()
  assert (out / '0' / '0' / 'seg-0_0_0.prob').exists()
  counters = (out / 'counters.txt').read_text().splitlines()
  assert counters == sorted(counters)
  values = dict(line.split(': ') for line in counters)
  assert int(values['inference-calls']) > 0
  assert 'FOVs/s' in proc.stderr

  seg, origins = results.load_segmentation(str(out), (0, 0, 0))
  assert seg.shape == (40, 60, 60) and seg.dtype == np.uint64
  assert origins and np.sum(seg > 0) > 1000
  with h5py.File(SAMPLE_DIR / 'groundtruth.h5', 'r') as f:
    truth = f['stack'][:40, :60, :60]
  # skimage gives (H(seg | truth), H(truth | seg)): (split, merge).
  split, merge = variation_of_information(truth, seg)
  _, trivial_merge = variation_of_information(truth, np.zeros_like(seg))
  # This small crop yields one large object, so the bounds are loose: fewer
  # merges than no segmentation at all, and little splitting.
  assert merge < trivial_merge
  assert split < 1.0
  inside = seg > 0
  # Where there are objects, they are nearly pure.
  assert variation_of_information(truth[inside], seg[inside])[1] < 0.5


def test_fast_config_records_its_engine(tmp_path):
  out = tmp_path / 'fast'
  fast = (REPO_ROOT / 'configs' / 'inference_training_sample2_fast.pbtxt').read_text()
  proc = _run(fast.replace('results/fib25/training2_fast', str(out)))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'Inference engine openvino' in proc.stderr and 'CPU offers' in proc.stderr
  with np.load(out / '0' / '0' / 'seg-0_0_0.npz', allow_pickle=True) as data:
    settings = json.loads(str(data['engine_settings']))
  assert settings['engine'] == 'openvino'
  assert settings['requested_precision'] == 'bfloat16'
  assert settings['precision'] in ('bfloat16', 'float32')
  seg, origins = results.load_segmentation(str(out), (0, 0, 0))
  assert seg.shape == (40, 60, 60) and origins and np.sum(seg > 0) > 1000


@pytest.mark.parametrize('old,new,message', [
    ('segment_threshold: 0.6', 'segment_treshold: 0.6', 'segment_treshold'),
    ('grayscale_maps.h5:raw', 'no_such_file.h5:raw', 'no_such_file.h5'),
    ('grayscale_maps.h5:raw', 'grayscale_maps.h5:nope', 'nope'),
    ('seed_policy: "PolicyPeaks"', 'seed_policy: "PolicyPeeks"', 'PolicyPeeks'),
    ('seed_policy: "PolicyPeaks"', 'movement_policy_name: "Wander"', 'Wander'),
    ('seed_policy: "PolicyPeaks"', 'self_prediction { threshold: 0.5 }', 'self_prediction'),
    ('seed_policy: "PolicyPeaks"', 'reference_histogram: "no_such_lut.npz"',
     'reference_histogram'),
    ('\\"depth\\": 12', '\\"depth\\": 13', 'conv12_a'),
    ('seed_policy: "PolicyPeaks"', 'engine: ONNX', 'ONNX'),
    ('seed_policy: "PolicyPeaks"', 'precision: INT8', 'INT8'),
])
def test_bad_request(tmp_path, old, new, message):
  out = tmp_path / 'out'
  proc = _run(_config(out, old, new))
  assert proc.returncode != 0
  assert message in proc.stderr
  assert 'Traceback' not in proc.stderr
  assert not out.exists()


@pytest.mark.parametrize('old,new', [
    ('segment_threshold: 0.6', 'segment_treshold: 0.6'),
    ('grayscale_maps.h5:raw', 'no_such_file.h5:raw'),
    ('seed_policy: "PolicyPeaks"', 'engine: ONNX'),
])
def test_bad_request_is_one_line_before_tensorflow_starts(tmp_path, old, new):
  # Without TF_CPP_MIN_LOG_LEVEL: TensorFlow's start-up lines would show if it loaded.
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  proc = subprocess.run(
      [sys.executable, 'run_inference.py',
       f'--inference_request={_config(tmp_path / "out", old, new)}', f'--bounding_box={CROP}'],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1
  assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize('bbox,message', [
    ('start { x: 300 y: 0 z: 0 } size { x: 10 y: 10 z: 10 }', 'beyond the image volume'),
    ('start { x: 0 y: 0 z: 0 } size { x: 0 y: 10 z: 10 }', 'positive'),
    ('start { x: 0 y: 0 z: 0 } sise { x: 10 y: 10 z: 10 }', 'sise'),
])
def test_bad_bounding_box(tmp_path, bbox, message):
  out = tmp_path / 'out'
  proc = _run(_config(out), bbox=bbox)
  assert proc.returncode != 0
  assert message in proc.stderr
  assert 'Traceback' not in proc.stderr
  assert not out.exists()


def test_several_bounding_boxes_each_segmented(tmp_path):
  out = tmp_path / 'two'
  boxes = ['start { x: 0 y: 0 z: 0 } size { x: 40 y: 36 z: 34 }',
           'start { x: 40 y: 0 z: 0 } size { x: 40 y: 36 z: 34 }']
  proc = _run(_config(out), bbox=boxes[0], extra=[f'--bounding_box={boxes[1]}'])
  assert proc.returncode == 0, proc.stderr[-3000:]
  for corner_xyz in ((0, 0, 0), (40, 0, 0)):
    corner_zyx = corner_xyz[::-1]
    seg, _ = results.load_segmentation(str(out), corner_zyx)
    assert seg.shape == (34, 36, 40)
  assert (out / '40' / '0' / 'seg-40_0_0.npz').exists()
