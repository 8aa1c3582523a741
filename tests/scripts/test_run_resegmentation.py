"""run_resegmentation.py end to end (hand-built TF model), and its one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / 'tests' / 'inference'))
import synthetic_ffn  # pylint: disable=g-import-not-at-top,wrong-import-position

RESEG = ('radius { x: 12 y: 8 z: 6 } analysis_radius { x: 10 y: 6 z: 4 } max_retry_iters: 2 '
         'exclusion_radius { x: 2 y: 2 z: 1 } segment_recovery_fraction: 0.6')


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
  """(image spec, segmentation spec, checkpoint, segmentation array)."""
  root = tmp_path_factory.mktemp('reseg_script')
  image, seg = synthetic_ffn.cut_and_wall_volume()
  return (synthetic_ffn.write_h5(root / 'image.h5', image),
          synthetic_ffn.write_h5(root / 'seg.h5', seg, 'seg'),
          synthetic_ffn.write_tf_checkpoint(root), seg)


def _request(inputs, out_dir, extra=''):
  image_spec, _, ckpt, _ = inputs
  inference = synthetic_ffn.request_text(image_spec, ckpt, str(out_dir / 'inference'))
  return f'inference {{ {inference} }} output_directory: "{out_dir}" {RESEG} {extra}'


def _run(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=os.pathsep.join(
      filter(None, [str(REPO_ROOT), os.environ.get('PYTHONPATH')])))
  return subprocess.run([sys.executable, str(REPO_ROOT / 'run_resegmentation.py'), *args],
                        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_touching_pairs_are_resegmented_decided_and_merged(inputs, tmp_path):
  out = tmp_path / 'reseg'
  proc = _run(f'--resegmentation_request={_request(inputs, out)}',
              f'--segmentation={inputs[1]}', '--voxel_size=1,1,2')
  assert proc.returncode == 0, proc.stderr[-3000:]
  decisions = [json.loads(line) for line in (out / 'decisions.jsonl').read_text().splitlines()]
  assert [(d['id_a'], d['id_b'], d['merge']) for d in decisions] == [(1, 2, True), (3, 4, False)]
  assert decisions[0]['point_xyz'] == [23, 11, 9]
  assert decisions[0]['result']['eval']['iou'] > 0.8
  assert (out / '1-2_at_23_11_9.npz').exists() and (out / '3-4_at_24_35_9.npz').exists()
  with h5py.File(out / 'agglomerated.h5', 'r') as f:
    merged = f['segmentation'][...]
  expected = inputs[3].copy()
  expected[expected == 2] = 1
  np.testing.assert_array_equal(merged, expected)
  assert 'pairs/s' in proc.stderr


def test_listed_pairs_and_rule_flags(inputs, tmp_path):
  out = tmp_path / 'reseg'
  pairs = tmp_path / 'pairs.txt'
  pairs.write_text('# id_a,id_b[,x,y,z]\n2,1\n')
  # An impossible IoU: nothing is merged.
  proc = _run(f'--resegmentation_request={_request(inputs, out)}', f'--segmentation={inputs[1]}',
              f'--pairs={pairs}', '--min_iou=1.0', f'--output_volume={tmp_path}/m.h5:labels')
  assert proc.returncode == 0, proc.stderr[-3000:]
  (decision,) = [json.loads(line) for line in (out / 'decisions.jsonl').read_text().splitlines()]
  assert (decision['id_a'], decision['id_b'], decision['merge']) == (2, 1, False)
  with h5py.File(tmp_path / 'm.h5', 'r') as f:
    np.testing.assert_array_equal(f['labels'][...], inputs[3])


def _tensorflow_startup_log(line: str) -> bool:
  """Whether a stderr line is TensorFlow's own start-up logging (not the script's words)."""
  return (line.startswith('WARNING: All log messages before absl::InitializeLog()')
          or re.match(r'^[IWEF]\d{4} ', line) is not None
          or line.startswith('To enable the following instructions'))


@pytest.mark.parametrize('args, message', [
    (['--resegmentation_request=output_directory: "{out}"'], 'no segmentation'),
    (['--resegmentation_request={request}', '--segmentation={seg}', '--voxel_size=1,1'],
     '--voxel_size must be three'),
    (['--resegmentation_request={no_retries}', '--segmentation={seg}'],
     'max_retry_iters is 0'),
    (['--resegmentation_request={request}', '--segmentation={seg}', '--pairs={pairs}'],
     'do not come within 1 voxel'),
    (['--resegmentation_request={request}', '--segmentation=/nonexistent.h5:seg'],
     'does not exist'),
    (['--resegmentation_request=bogus: 1'], 'not a valid ResegmentationRequest'),
])
def test_errors_are_one_line(inputs, tmp_path, args, message):
  out = tmp_path / 'reseg'
  pairs = tmp_path / 'pairs.txt'
  pairs.write_text('1,3\n')
  request = _request(inputs, out)
  values = dict(out=out, seg=inputs[1], pairs=pairs, request=request,
                no_retries=request.replace('max_retry_iters: 2', 'max_retry_iters: 0'))
  proc = _run(*[a.format(**values) for a in args])
  assert proc.returncode == 1, proc.stderr[-3000:]
  lines = [line for line in proc.stderr.strip().splitlines() if not _tensorflow_startup_log(line)]
  assert len(lines) == 1 and message in lines[0], proc.stderr[-3000:]
  assert not (out / 'decisions.jsonl').exists()
