"""Scoring only the groundtruth bodies under given points (evaluate_segmentation.py --points)."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np

from ffn.analysis import evaluation
from ffn.analysis import targets


def _toy():
  """zyx (groundtruth, segmentation), non-cubic: bodies 1, 2, 3 side by side along x."""
  gt = np.zeros((4, 6, 12), np.uint64)
  gt[:, :, 0:4], gt[:, :, 4:8], gt[:, :, 8:12] = 1, 2, 3
  seg = np.zeros_like(gt)
  seg[:, :, 0:6] = 10  # Body 1 and half of body 2: a merge.
  return gt, seg


def test_bodies_under_points_are_read_in_xyz():
  gt, _ = _toy()
  gt[0, 0, 11] = 0
  # (x, y, z): body 1, body 3 (x 9), outside (x 12), background, and body 1 again.
  found = targets.bodies_under(np.array([[1, 2, 3], [9, 5, 0], [12, 0, 0], [11, 0, 0],
                                         [3, 0, 0]]), gt)
  assert found == targets.Targets(bodies=(1, 3), points=5, outside=1, on_background=1)
  # With the region's offset: global x 21 is local x 1.
  assert targets.bodies_under(np.array([[21, 0, 0]]), gt, offset_xyz=(20, 0, 0)).bodies == (1,)


def test_each_point_reports_its_body_and_the_segment_there():
  gt, seg = _toy()
  # Body 1 (x 0..3) lies wholly in segment 10, which also covers half of body 2; body 3 is
  # unsegmented; x 20 is outside.
  rows = targets.objects_at(np.array([[2, 1, 0], [5, 0, 3], [9, 0, 0], [20, 0, 0]]), seg, gt)
  assert [(r['body'], r['segment']) for r in rows] == [(1, 10), (2, 10), (3, 0)]
  assert rows[0]['recovered'] == 1.0 and rows[0]['purity'] == 2 / 3
  assert rows[1]['recovered'] == 0.5 and rows[1]['purity'] == 1 / 3
  assert rows[2]['recovered'] == 0 and rows[2]['purity'] == 0
  assert [r['point_xyz'] for r in rows] == [[2, 1, 0], [5, 0, 3], [9, 0, 0]]


def test_a_merge_into_another_body_counts_and_untouched_bodies_do_not():
  gt, seg = _toy()
  scored, alone = targets.restrict(seg, gt, [1])
  # Body 1 and the part of body 2 under segment 10 are scored; body 3 and the rest are not.
  assert np.array_equal(np.unique(scored), [0, 1, 2]) and np.sum(scored == 2) == 4 * 6 * 2
  assert np.array_equal(np.unique(alone), [0, 1])
  merged = evaluation.evaluate_arrays(seg, scored, seg_zero='segment')
  assert merged.vi_merge > 0.5 and merged.vi_split == 0
  exact = np.where(gt == 1, 10, 0).astype(np.uint64)
  clean = evaluation.evaluate_arrays(exact, targets.restrict(exact, gt, [1])[0],
                                     seg_zero='segment')
  assert clean.vi_merge == 0 and clean.vi_split == 0  # Bodies 2 and 3 unsegmented: not judged.


def test_script_scores_only_the_targets(tmp_path, repo_root):
  gt, seg = _toy()
  with h5py.File(tmp_path / 'v.h5', 'w') as f:
    f['gt'], f['seg'] = gt, np.where(gt == 1, 10, 0).astype(np.uint64)
  points = tmp_path / 'points.csv'
  points.write_text('1,2,3\n')
  out = tmp_path / 'eval.json'
  run = lambda *extra: subprocess.run(
      [sys.executable, str(repo_root / 'evaluate_segmentation.py'), '--segmentation',
       f'{tmp_path}/v.h5:seg', '--groundtruth', f'{tmp_path}/v.h5:gt', '--noerl', *extra],
      capture_output=True, text=True, cwd=repo_root, timeout=120)
  proc = run('--points', str(points), '--output_json', str(out), '--seg_zero', 'segment')
  assert proc.returncode == 0, proc.stderr
  data = json.loads(out.read_text())
  assert data['vi_split'] == 0 and data['vi_merge'] == 0
  assert data['inputs']['points'] == {
      'bodies': [1], 'points': 1, 'outside': 0, 'on_background': 0,
      'objects': [{'point_xyz': [1, 2, 3], 'body': 1, 'segment': 10, 'body_voxels': 4 * 6 * 4,
                   'segment_voxels': 4 * 6 * 4, 'recovered': 1.0, 'purity': 1.0}]}
  assert 'targets: groundtruth bodies [1]' in proc.stdout
  # Without --points the unsegmented bodies 2 and 3 count.
  assert run('--seg_zero', 'segment', '--output_json', str(out), '--overwrite').returncode == 0
  assert json.loads(out.read_text())['vi_merge'] > 0.5  # Segment 0 holds bodies 2 and 3.
  points.write_text('1,2,3\n30,0,0\n1,2\n')
  proc = run('--points', str(points))
  assert proc.returncode == 1 and 'line 3 has 2 values' in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1
  points.write_text('30,0,0\n')
  proc = run('--points', str(points))
  assert proc.returncode == 1 and 'none of the 1 points lies on a groundtruth body' in proc.stderr
