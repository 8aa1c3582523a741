"""select_checkpoint.py --subvolume_size: checkpoints segment the box as stitched blockwise runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ffn.analysis import checkpoint_selection
from ffn.analysis import evaluation
from ffn.blockwise import box_segmenter
from ffn.inference.io import results
from tests.inference import synthetic_ffn

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHAPE_ZYX = (20, 40, 48)
BOX = 'start { x:0 y:0 z:0 } size { x:48 y:40 z:20 }'



@pytest.fixture(name='setup')
def _setup(tmp_path):
  """(request text, groundtruth spec, train_dir) of the blob volume and two checkpoints."""
  # The blobs lie in the overlap of the two blocks (x 16..32) or cross it.
  image, labels = synthetic_ffn.blob_volume(SHAPE_ZYX)
  image_spec = synthetic_ffn.write_h5(tmp_path / 'image.h5', image)
  gt_spec = synthetic_ffn.write_h5(tmp_path / 'gt.h5', labels, 'stack')
  train_dir = tmp_path / 'train'
  train_dir.mkdir()
  synthetic_ffn.write_ranked_checkpoints(train_dir)
  request = synthetic_ffn.request_text(
      image_spec, 'replaced', str(tmp_path / 'unused'), seed_policy='"PolicyGrid3d"',
      seed_policy_args=r'"{\"step\": 4, \"offsets\": [1, 2]}"')
  return request, gt_spec, train_dir


def _select(request, gt_spec, train_dir, out, *extra):
  env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run(
      [sys.executable, '-m', 'ffn.scripts.select_checkpoint', '--inference_request', request,
       '--bounding_box', BOX, '--groundtruth', gt_spec, '--train_dir', str(train_dir),
       '--output_dir', str(out), *extra],
      capture_output=True, text=True, env=env, check=False, timeout=600)


def test_blockwise_scores_are_those_of_the_stitched_volume_and_resume(setup, tmp_path):
  request, gt_spec, train_dir = setup
  out = tmp_path / 'selection'
  # Two blocks along x (24 voxels apart, 16 of overlap).
  blockwise = ('--subvolume_size', '32,40,20', '--overlap', '16,0,0', '--min_overlap_size',
               '20', '--num_workers', '1')
  proc = _select(request, gt_spec, train_dir, out, *blockwise)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'scored 2, already scored 0' in proc.stdout
  data = json.loads((out / checkpoint_selection.SCORES_FILE).read_text())
  assert data['validation']['segmentation'] == {
      'mode': 'blockwise', 'subvolume_size_zyx': [20, 40, 32], 'overlap_zyx': [0, 0, 16],
      'min_overlap_size': 20, 'min_overlap_fraction': 0.5}
  rows = {row['step']: row for row in data['checkpoints']}
  assert data['best'] == rows[10]['checkpoint']
  for step, row in rows.items():
    stitched = (f'{os.path.join(row["segmentation_dir"], box_segmenter.STITCHED_FILE)}:'
                f'{box_segmenter.STITCHED_DATASET}')
    assert row['segmentation'] == stitched
    assert os.path.basename(row['segmentation_dir']) == f'model.ckpt-{step}'
    # One subvolume result per block (zyx corners), beside the stitched volume.
    for corner in ((0, 0, 0), (0, 0, 16)):
      assert os.path.exists(results.segmentation_path(row['segmentation_dir'], corner))
    result, _, _ = evaluation.evaluate(stitched, gt_spec)
    assert row['vi_split'] == pytest.approx(result.vi_split, abs=1e-12)
    assert row['vi_merge'] == pytest.approx(result.vi_merge, abs=1e-12)
    assert row['adapted_rand_error'] == pytest.approx(result.adapted_rand_error, abs=1e-12)
    assert row['num_segments'] == result.num_segments
  assert rows[10]['vi_total'] < rows[5]['vi_total']
  # Stitched across the border, the blobs score as they do segmented in one run.
  single_out = tmp_path / 'single'
  proc = _select(request, gt_spec, train_dir, single_out)
  assert proc.returncode == 0, proc.stderr[-3000:]
  single = {r['step']: r for r in json.loads(
      (single_out / checkpoint_selection.SCORES_FILE).read_text())['checkpoints']}
  for name in ('vi_split', 'vi_merge', 'adapted_rand_error', 'num_segments'):
    assert rows[10][name] == pytest.approx(single[10][name], abs=1e-9), name

  stitched_10 = rows[10]['segmentation'].rsplit(':', 1)[0]
  mtime = os.stat(stitched_10).st_mtime_ns
  again = _select(request, gt_spec, train_dir, out, *blockwise, '--num_workers', '2')
  assert again.returncode == 0, again.stderr[-3000:]
  assert 'scored 0, already scored 2' in again.stdout
  assert os.stat(stitched_10).st_mtime_ns == mtime

  # Scores of blockwise runs are not mixed with those of single runs.
  single = _select(request, gt_spec, train_dir, out)
  assert single.returncode == 1 and 'another validation' in single.stderr
  assert 'Traceback' not in single.stderr


@pytest.mark.parametrize('flags,message', [
    (('--subvolume_size', '32,40,20'), '--subvolume_size needs --overlap'),
    (('--num_workers', '2'), '--num_workers applies to blockwise runs only'),
    (('--subvolume_size', '8,40,20', '--overlap', '4,0,0'), "smaller than the model's field"),
])
def test_bad_blockwise_flags_fail_in_one_line_before_any_work(setup, tmp_path, flags, message):
  request, gt_spec, train_dir = setup
  out = tmp_path / 'selection'
  proc = _select(request, gt_spec, train_dir, out, *flags)
  assert proc.returncode == 1
  assert message in proc.stderr and 'Traceback' not in proc.stderr
  assert not out.exists()
