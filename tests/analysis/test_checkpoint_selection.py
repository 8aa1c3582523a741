"""Checkpoint selection: a trained checkpoint ranks above an untrained one; resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from google.protobuf import text_format

from ffn.analysis import checkpoint_selection
from ffn.utils import bounding_box
from tests.inference import synthetic_ffn

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))



@pytest.fixture(name='setup')
def _setup(tmp_path):
  image, labels = synthetic_ffn.blob_volume()
  image_spec = synthetic_ffn.write_h5(tmp_path / 'image.h5', image)
  gt_spec = synthetic_ffn.write_h5(tmp_path / 'gt.h5', labels, 'stack')
  train_dir = tmp_path / 'train'
  train_dir.mkdir()
  prefixes = synthetic_ffn.write_ranked_checkpoints(train_dir)
  request = synthetic_ffn.request_text(image_spec, 'replaced', str(tmp_path / 'unused'))
  box = bounding_box.BoundingBox(start=(0, 0, 0), size=image.shape[::-1])
  validation = checkpoint_selection.Validation(
      request=text_format.Parse(request, checkpoint_selection.inference_pb2.InferenceRequest()),
      box=box, groundtruth=gt_spec)
  return validation, train_dir, prefixes, tmp_path / 'selection'


def test_trained_ranks_above_untrained_and_resume_segments_nothing(setup):
  validation, train_dir, (untrained, trained), out = setup
  prefixes = checkpoint_selection.find_checkpoints(train_dir=str(train_dir))
  assert [checkpoint_selection.checkpoint_step(p) for p in prefixes] == [5, 10]

  first = checkpoint_selection.select_checkpoints(validation, prefixes, str(out))
  by_step = {r['step']: r for r in first.rows}
  assert first.best['checkpoint'] == os.path.abspath(trained)
  assert by_step[10]['vi_total'] < by_step[5]['vi_total']
  assert by_step[10]['adapted_rand_error'] < by_step[5]['adapted_rand_error']
  assert by_step[10]['erl_nm'] > (by_step[5]['erl_nm'] or 0)
  assert sorted(first.scored) == sorted(prefixes) and not first.reused
  # Each checkpoint segmented into its own directory.
  assert {os.path.basename(r['segmentation_dir']) for r in first.rows} == {
      'model.ckpt-5', 'model.ckpt-10'}
  data = json.loads((out / checkpoint_selection.SCORES_FILE).read_text())
  assert data['best'] == os.path.abspath(trained) and len(data['checkpoints']) == 2
  assert (out / checkpoint_selection.PLOT_FILE).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  table = checkpoint_selection.format_table(first)
  assert [l for l in table.splitlines() if l.startswith('*')][0].split()[1] == '10'

  seg_files = [os.path.join(r['segmentation_dir'], f) for r in first.rows
               for f in os.listdir(r['segmentation_dir'])]
  mtimes = {f: os.stat(f).st_mtime_ns for f in seg_files}
  second = checkpoint_selection.select_checkpoints(validation, prefixes, str(out), 'erl_nm')
  assert not second.scored and sorted(second.reused) == sorted(prefixes)
  assert {f: os.stat(f).st_mtime_ns for f in seg_files} == mtimes
  assert second.best['step'] == 10


def test_every_and_bad_inputs(setup, tmp_path):
  validation, train_dir, _, out = setup
  assert [checkpoint_selection.checkpoint_step(p) for p in
          checkpoint_selection.find_checkpoints(train_dir=str(train_dir), every=2)] == [5]
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(checkpoint_selection.SelectionError, match='no checkpoints'):
    checkpoint_selection.find_checkpoints(train_dir=str(empty))
  with pytest.raises(checkpoint_selection.SelectionError, match='not both'):
    checkpoint_selection.find_checkpoints(['a'], str(train_dir))
  outside = checkpoint_selection.Validation(
      validation.request, bounding_box.BoundingBox(start=(40, 0, 0), size=(20, 10, 10)),
      validation.groundtruth)
  with pytest.raises(checkpoint_selection.SelectionError, match='outside groundtruth'):
    checkpoint_selection.select_checkpoints(outside, [str(train_dir / 'model.ckpt-5')], str(out))
  with pytest.raises(checkpoint_selection.SelectionError, match='metric'):
    checkpoint_selection.select_checkpoints(validation, [str(train_dir / 'model.ckpt-5')],
                                            str(out), 'dice')
  assert not out.exists()


def test_script_one_line_error_on_empty_train_dir(setup, tmp_path):
  validation, _, _, out = setup
  empty = tmp_path / 'empty'
  empty.mkdir()
  env = dict(os.environ, PYTHONPATH=REPO)
  proc = subprocess.run(
      [sys.executable, '-m', 'ffn.scripts.select_checkpoint',
       '--inference_request', text_format.MessageToString(validation.request),
       '--bounding_box', 'start { x:0 y:0 z:0 } size { x:48 y:40 z:20 }',
       '--groundtruth', validation.groundtruth, '--train_dir', str(empty),
       '--output_dir', str(out)], capture_output=True, text=True, env=env, check=False)
  assert proc.returncode != 0
  assert 'no checkpoints' in proc.stderr and 'Traceback' not in proc.stderr
  assert not out.exists()
