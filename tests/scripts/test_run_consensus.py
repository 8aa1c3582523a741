"""run_consensus.py and ffn.scripts.run_consensus: flags, request merging, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from ffn.inference.io import results

from conftest import REPO_ROOT

CORNER = (0, 0, 8)  # zyx


def _run(*args):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      filter(None, [str(REPO_ROOT), os.environ.get('PYTHONPATH')])))
  return subprocess.run([sys.executable, str(REPO_ROOT / 'run_consensus.py'), *args],
                        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)


def _inputs(tmp_path):
  """Two results of one (3, 4, 5) zyx subvolume: a is one object, b cuts it at y == 1|2."""
  a = np.ones((3, 4, 5), dtype=np.uint64)
  b = np.ones((3, 4, 5), dtype=np.uint64)
  b[:, 2:, :] = 2
  b[0, 3, 4] = 3  # A one-voxel piece.
  for name, labels in (('a', a), ('b', b)):
    results.save_subvolume(labels, {}, results.segmentation_path(str(tmp_path / name), CORNER))
  return str(tmp_path / 'a'), str(tmp_path / 'b')


def test_flags_give_the_request_and_split_min_size_defaults_to_1000(tmp_path):
  dir_a, dir_b = _inputs(tmp_path)
  out = str(tmp_path / 'out')
  proc = _run(f'--segmentation1_dir={dir_a}', f'--segmentation2_dir={dir_b}',
              f'--segmentation_output_dir={out}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  # With split_min_size 1000 every piece of this tiny volume is dropped.
  seg, _ = results.load_segmentation(out, CORNER)
  assert not seg.any()

  out = str(tmp_path / 'out2')
  proc = _run('--consensus_request=segmentation1 { directory: "%s" split_cc: false } '
              'split_min_size: 2' % dir_a, f'--segmentation2_dir={dir_b}',
              f'--segmentation_output_dir={out}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  seg, _ = results.load_segmentation(out, CORNER, split_cc=False)
  expected = np.ones((3, 4, 5), dtype=np.uint64)
  expected[:, 2:, :] = 2  # (1, 2): 29 voxels, new id 2; (1, 1): 30 voxels keeps 1.
  expected[0, 3, 4] = 0  # (1, 3) has 1 voxel < 2.
  np.testing.assert_array_equal(seg, expected)


def test_errors_are_one_line_and_write_nothing(tmp_path):
  dir_a, dir_b = _inputs(tmp_path)
  out = tmp_path / 'out'
  cases = [
      ([f'--segmentation1_dir={dir_a}', f'--segmentation_output_dir={out}'],
       'no segmentation2 directory'),
      ([f'--segmentation1_dir={dir_a}', f'--segmentation2_dir={tmp_path / "missing"}',
        f'--segmentation_output_dir={out}'], 'does not exist'),
      (['--consensus_request=split_min_size: 5', '--split_min_size=7',
        f'--segmentation1_dir={dir_a}', f'--segmentation2_dir={dir_b}',
        f'--segmentation_output_dir={out}'], '--split_min_size=7 conflicts'),
      (['--consensus_request=bogus: 1'], 'not a valid ConsensusRequest'),
  ]
  for args, message in cases:
    proc = _run(*args)
    assert proc.returncode == 1, (args, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], (args, proc.stderr)
    assert 'Traceback' not in proc.stderr
  assert not out.exists()
