"""Tests for ffn.analysis.evaluation and evaluate_segmentation.py, on hand-computed toy volumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from skimage import metrics

from ffn.analysis import evaluation as ev
from ffn.utils import bounding_box


def _pairs(sizes) -> int:
  """Ordered pairs of distinct voxels within groups of the given sizes."""
  return sum(n * (n - 1) for n in sizes)


def _f1_error(precision: float, recall: float) -> float:
  return 1 - 2 * precision * recall / (precision + recall)


def _two_bodies(shape=(2, 3, 5), split_x=2):
  """Body 1 where x < split_x, body 2 elsewhere (zyx)."""
  gt = np.ones(shape, dtype=np.int64)
  gt[..., split_x:] = 2
  return gt


def test_skimage_adapted_rand_orientation_is_detected():
  truth = np.array([1, 1, 1, 1, 2, 2, 2, 2])
  over_segmented = np.array([1, 1, 2, 2, 3, 3, 4, 4])
  _, first, second = metrics.adapted_rand_error(truth, over_segmented)
  # Precision is 1 for a pure over-segmentation: whichever slot holds 1.0 is precision.
  assert sorted([first, second]) == pytest.approx([1 / 3, 1.0])
  assert ev._skimage_swaps_precision_recall() == (first != pytest.approx(1.0))


def test_identity_is_perfect():
  gt = _two_bodies()
  result = ev.evaluate_arrays(gt * 7, gt)  # Ids differ, the partition is the same.
  assert result.vi_split == pytest.approx(0, abs=1e-12)
  assert result.vi_merge == pytest.approx(0, abs=1e-12)
  assert result.adapted_rand_error == pytest.approx(0, abs=1e-12)
  assert result.rand_precision == pytest.approx(1)
  assert result.rand_recall == pytest.approx(1)
  assert result.mergers == [] and result.splits == []


def test_pure_split():
  gt = _two_bodies()  # Body 1: 12 voxels, body 2: 18 voxels.
  seg = gt.copy()
  seg[1][gt[1] == 2] = 3  # Body 2 split into its z=0 and z=1 halves (9 + 9).
  result = ev.evaluate_arrays(seg, gt, min_overlap=1)
  precision, recall = 1.0, _pairs([12, 9, 9]) / _pairs([12, 18])
  assert result.rand_precision == pytest.approx(precision)
  assert result.rand_recall == pytest.approx(recall)
  assert result.adapted_rand_error == pytest.approx(_f1_error(precision, recall))
  assert result.vi_split == pytest.approx(18 / 30 * 1.0)  # Body 2 (p=0.6) halved: 1 bit.
  assert result.vi_merge == pytest.approx(0, abs=1e-12)
  assert result.mergers == []
  [split] = result.splits
  assert (split.label, split.size, split.count) == (2, 18, 2)
  assert sorted(split.partners) == [(2, 9), (3, 9)]


def test_pure_merge():
  gt = _two_bodies()
  seg = np.full(gt.shape, 5, dtype=np.uint64)
  result = ev.evaluate_arrays(seg, gt, min_overlap=1)
  precision, recall = _pairs([12, 18]) / _pairs([30]), 1.0
  assert result.rand_precision == pytest.approx(precision)
  assert result.rand_recall == pytest.approx(recall)
  assert result.adapted_rand_error == pytest.approx(_f1_error(precision, recall))
  h = -(0.4 * np.log2(0.4) + 0.6 * np.log2(0.6))
  assert result.vi_merge == pytest.approx(h)
  assert result.vi_split == pytest.approx(0, abs=1e-12)
  [merger] = result.mergers
  assert (merger.label, merger.size, merger.count) == (5, 30, 2)
  assert merger.partners == [(2, 18), (1, 12)]
  assert result.splits == []


def test_groundtruth_zero_is_ignored():
  gt = _two_bodies((3, 2, 6), split_x=3)
  gt[:, :, 0] = 0
  seg = gt.copy()
  a = ev.evaluate_arrays(seg, gt)
  seg[gt == 0] = 2  # Whatever the segmentation says there does not count.
  b = ev.evaluate_arrays(seg, gt)
  assert a.adapted_rand_error == b.adapted_rand_error == pytest.approx(0, abs=1e-12)
  assert b.vi_merge == pytest.approx(0, abs=1e-12)
  assert b.scored_voxels == gt.size - 6


def test_segmentation_zero_conventions():
  gt = np.array([[[1, 1, 1, 1], [2, 2, 2, 2]]])  # (1, 2, 4)
  seg = np.array([[[1, 1, 0, 0], [2, 2, 0, 0]]])

  singletons = ev.evaluate_arrays(seg, gt, seg_zero='singletons')
  precision, recall = 1.0, _pairs([2, 2]) / _pairs([4, 4])
  assert singletons.rand_precision == pytest.approx(precision)
  assert singletons.rand_recall == pytest.approx(recall)
  assert singletons.adapted_rand_error == pytest.approx(5 / 7)
  # Each body: half in one segment, two singleton quarters -> 1.5 bits.
  assert singletons.vi_split == pytest.approx(1.5)
  assert singletons.vi_merge == pytest.approx(0, abs=1e-12)
  assert singletons.unsegmented_voxels == 4

  one = ev.evaluate_arrays(seg, gt, seg_zero='segment')
  # Segment 0 holds 2 voxels of each body.
  assert one.rand_precision == pytest.approx((2 + 2 + 4) / (2 + 2 + 12))
  assert one.rand_recall == pytest.approx((2 + 2 + 4) / 24)
  assert one.adapted_rand_error == pytest.approx(0.6)
  assert one.vi_split == pytest.approx(1.0)
  assert one.vi_merge == pytest.approx(0.5)
  # Segment 0 is never listed as a merger.
  assert all(m.label != 0 for m in one.mergers)


def test_border_mask_2d_and_3d():
  gt = _two_bodies((2, 3, 8), split_x=4)
  mask = ev.groundtruth_border_mask(gt, ev.BorderExclusion(1))
  np.testing.assert_array_equal(np.flatnonzero(mask[0, 0]), [2, 3, 4, 5])
  assert np.all(mask == mask[:1, :1])
  # In nm: 4 nm voxels in x, so 8 nm reaches two voxels.
  mask = ev.groundtruth_border_mask(gt, ev.BorderExclusion(8, (4, 4, 40)))
  np.testing.assert_array_equal(np.flatnonzero(mask[0, 0]), [1, 2, 3, 4, 5, 6])
  mask = ev.groundtruth_border_mask(gt, ev.BorderExclusion(7.9, (4, 4, 40)))
  np.testing.assert_array_equal(np.flatnonzero(mask[0, 0]), [2, 3, 4, 5])

  layered = np.ones((6, 3, 4), dtype=np.int64)
  layered[3:] = 2  # A boundary between z=2 and z=3 only.
  assert not ev.groundtruth_border_mask(layered, ev.BorderExclusion(1, mode='2d')).any()
  mask = ev.groundtruth_border_mask(layered, ev.BorderExclusion(1, mode='3d'))
  np.testing.assert_array_equal(np.flatnonzero(mask[:, 0, 0]), [1, 2, 3, 4])
  with pytest.raises(ev.EvaluationError, match='border mode'):
    ev.groundtruth_border_mask(layered, ev.BorderExclusion(1, mode='4d'))


def test_border_exclusion_forgives_boundary_errors():
  gt = _two_bodies((2, 3, 8), split_x=4)
  seg = gt.copy()
  seg[..., 3] = 2  # The boundary moved by one voxel.
  plain = ev.evaluate_arrays(seg, gt)
  assert plain.adapted_rand_error > 0.01
  excluded = ev.evaluate_arrays(seg, gt, border=ev.BorderExclusion(1))
  assert excluded.adapted_rand_error == pytest.approx(0, abs=1e-12)
  assert excluded.vi_split + excluded.vi_merge == pytest.approx(0, abs=1e-12)
  assert excluded.excluded_border_voxels == 2 * 3 * 4
  assert excluded.scored_voxels == 2 * 3 * 4


def test_offender_positions_and_min_overlap():
  gt = np.zeros((4, 6, 10), dtype=np.int64)
  gt[..., :5] = 1
  gt[..., 5:] = 2
  seg = gt.copy()
  seg[:, :, 4:6] = 9  # Segment 9 takes a 2-voxel-wide strip from both bodies.
  result = ev.evaluate_arrays(seg, gt, offset_xyz=(100, 200, 300), min_overlap=1)
  [merger] = result.mergers
  assert merger.label == 9 and merger.count == 2 and merger.size == 48
  assert merger.box_start_xyz == [104, 200, 300] and merger.box_end_xyz == [106, 206, 304]
  x, y, z = merger.position_xyz
  assert seg[z - 300, y - 200, x - 100] == 9
  assert {s.label for s in result.splits} == {1, 2}
  # Overlaps of 24 voxels are below a min_overlap of 25: nothing is listed.
  quiet = ev.evaluate_arrays(seg, gt, min_overlap=25)
  assert quiet.mergers == [] and quiet.splits == []
  assert quiet.adapted_rand_error == result.adapted_rand_error


@pytest.mark.parametrize('seg_zero', ev.SEG_ZERO_MODES)
def test_split_body_reports_unsegmented_voxels(seg_zero):
  gt = np.full((3, 4, 10), 7, dtype=np.int64)
  seg = np.ones_like(gt)
  seg[..., 5:] = 2
  seg[0, 0, :3] = 0  # 3 voxels of body 7 left unsegmented.
  result = ev.evaluate_arrays(seg, gt, seg_zero=seg_zero, min_overlap=1)
  [split] = result.splits
  assert (split.label, split.size, split.count, split.unsegmented) == (7, 120, 2, 3)
  assert split.partners == [(2, 60), (1, 57)]
  assert result.unsegmented_voxels == 3
  assert 'unseg.' in ev.format_report(result)


def test_bad_arrays():
  gt = _two_bodies()
  with pytest.raises(ev.EvaluationError, match=r'shape \(2, 3, 4\).*\(2, 3, 5\)'):
    ev.evaluate_arrays(gt[..., :4], gt)
  with pytest.raises(ev.EvaluationError, match='no voxels left'):
    ev.evaluate_arrays(gt, np.zeros_like(gt))
  with pytest.raises(ev.EvaluationError, match='seg_zero'):
    ev.evaluate_arrays(gt, gt, seg_zero='ignore')
  with pytest.raises(ev.EvaluationError, match='integer'):
    ev.evaluate_arrays(gt.astype(np.float32), gt)


def test_json_dict_is_json():
  gt = _two_bodies()
  data = ev.evaluate_arrays(np.ones_like(gt), gt, min_overlap=1).to_json_dict()
  text = json.dumps(data, allow_nan=False)
  assert json.loads(text)['label_zero_convention']['groundtruth'] == 'ignored'
  assert 'VI split' in ev.format_report(ev.evaluate_arrays(np.ones_like(gt), gt))


# ----------------------------------------------------------------------------
# Loading from files: volume specs and inference results.


@pytest.fixture
def toy_files(tmp_path):
  """A groundtruth h5 (zyx 6x10x12), a matching segmentation h5, and a result subvolume dir."""
  gt = np.zeros((6, 10, 12), dtype=np.int64)
  gt[:, :, :6] = 11
  gt[:, :, 6:] = 12
  gt[:, :2] = 0
  with h5py.File(tmp_path / 'gt.h5', 'w') as f:
    f['stack'] = gt
  seg = gt.copy()
  seg[:3][seg[:3] == 12] = 13
  with h5py.File(tmp_path / 'seg.h5', 'w') as f:
    f['seg'] = seg
    f['short'] = seg[:5]
  from ffn.inference.io import results  # pylint: disable=g-import-not-at-top
  # A 4x6x8 (zyx) result at xyz corner (4, 2, 1) that merges both bodies.
  results.save_subvolume(np.ones((4, 6, 8), dtype=np.uint8), {},
                         results.segmentation_path(str(tmp_path / 'res'), (1, 2, 4)))
  return tmp_path, gt, seg


def test_evaluate_volume_specs(toy_files):
  tmp_path, gt, seg = toy_files
  result, seg_read, gt_read = ev.evaluate(f'{tmp_path}/seg.h5:seg', f'{tmp_path}/gt.h5:stack')
  np.testing.assert_array_equal(seg_read, seg)
  direct = ev.evaluate_arrays(seg, gt)
  assert result.adapted_rand_error == pytest.approx(direct.adapted_rand_error)
  assert result.inputs['groundtruth'].endswith('gt.h5:stack')

  box = bounding_box.BoundingBox(start=(0, 0, 3), size=(12, 10, 3))  # z >= 3: no split.
  result, seg_read, _ = ev.evaluate(f'{tmp_path}/seg.h5:seg', f'{tmp_path}/gt.h5:stack', box)
  assert seg_read.shape == (3, 10, 12)
  assert result.adapted_rand_error == pytest.approx(0, abs=1e-12)
  assert result.box == {'start_xyz': [0, 0, 3], 'size_xyz': [12, 10, 3]}


def test_evaluate_result_subvolume(toy_files):
  tmp_path, gt, _ = toy_files
  source = ev.ResultSource(str(tmp_path / 'res'), corner_xyz=(4, 2, 1))
  result, seg, gt_read = ev.evaluate(source, f'{tmp_path}/gt.h5:stack', min_overlap=1)
  np.testing.assert_array_equal(gt_read, gt[1:5, 2:8, 4:12])
  assert seg.shape == (4, 6, 8)
  [merger] = result.mergers
  assert merger.label == 1 and merger.count == 2
  assert 4 <= merger.position_xyz[0] < 12 and 1 <= merger.position_xyz[2] < 5
  assert result.box['start_xyz'] == [4, 2, 1]


def test_evaluate_a_box_inside_a_result_at_a_corner(toy_files):
  tmp_path, gt, _ = toy_files
  from ffn.inference.io import results  # pylint: disable=g-import-not-at-top
  labels = np.arange(4 * 6 * 8, dtype=np.uint64).reshape(4, 6, 8) + 1
  results.save_subvolume(labels, {}, results.segmentation_path(str(tmp_path / 'ids'), (1, 2, 4)))
  source = ev.ResultSource(str(tmp_path / 'ids'), corner_xyz=(4, 2, 1), split_cc=False)
  # The whole result, and a box inside it away from its corner (global xyz).
  for start, size in (((4, 2, 1), (8, 6, 4)), ((6, 3, 2), (5, 4, 2))):
    box = bounding_box.BoundingBox(start=start, size=size)
    _, seg, gt_read = ev.evaluate(source, f'{tmp_path}/gt.h5:stack', box)
    local = tuple(slice(b - c, b - c + n) for b, c, n in zip(start[::-1], (1, 2, 4), size[::-1]))
    np.testing.assert_array_equal(seg, labels[local])
    glob_ = tuple(slice(b, b + n) for b, n in zip(start[::-1], size[::-1]))
    np.testing.assert_array_equal(gt_read, gt[glob_])


def test_evaluate_bad_inputs(toy_files):
  tmp_path, _, _ = toy_files
  gt_spec = f'{tmp_path}/gt.h5:stack'
  with pytest.raises(ev.EvaluationError, match=r'shape \(5, 10, 12\).*must match'):
    ev.evaluate(f'{tmp_path}/seg.h5:short', gt_spec)
  outside = bounding_box.BoundingBox(start=(8, 0, 0), size=(8, 4, 4))
  with pytest.raises(ev.EvaluationError, match='not inside groundtruth'):
    ev.evaluate(f'{tmp_path}/seg.h5:seg', gt_spec, outside)
  source = ev.ResultSource(str(tmp_path / 'res'), corner_xyz=(4, 2, 1))
  inside_gt_not_result = bounding_box.BoundingBox(start=(0, 0, 0), size=(4, 4, 4))
  with pytest.raises(ev.EvaluationError, match='not inside segmentation'):
    ev.evaluate(source, gt_spec, inside_gt_not_result)
  from ffn.inference.io import results  # pylint: disable=g-import-not-at-top
  # A result reaching past the groundtruth's x extent (12): x from 10 to 18.
  results.save_subvolume(np.ones((2, 2, 8), np.uint8), {},
                         results.segmentation_path(str(tmp_path / 'res'), (0, 0, 10)))
  with pytest.raises(ev.EvaluationError, match='does not fit in groundtruth'):
    ev.evaluate(ev.ResultSource(str(tmp_path / 'res'), corner_xyz=(10, 0, 0)), gt_spec)
  with pytest.raises(ValueError, match='no segmentation for corner'):
    ev.evaluate(ev.ResultSource(str(tmp_path / 'res'), corner_xyz=(0, 0, 0)), gt_spec)
  with pytest.raises(ValueError, match='not found'):
    ev.evaluate(f'{tmp_path}/seg.h5:nope', gt_spec)


# ----------------------------------------------------------------------------
# The script.


def _run(repo_root, *args):
  return subprocess.run([sys.executable, str(repo_root / 'evaluate_segmentation.py'), *args],
                        capture_output=True, text=True, cwd=repo_root, timeout=120)


def test_script_writes_table_json_and_overview(toy_files, repo_root):
  tmp_path, gt, _ = toy_files
  out_json = tmp_path / 'eval.json'
  out_png = tmp_path / 'overview.png'
  with h5py.File(tmp_path / 'image.h5', 'w') as f:
    f['raw'] = np.arange(gt.size, dtype=np.uint8).reshape(gt.shape)
  proc = _run(repo_root, '--segmentation_dir', str(tmp_path / 'res'), '--corner', '4,2,1',
              '--groundtruth', f'{tmp_path}/gt.h5:stack', '--output_json', str(out_json),
              '--overview_png', str(out_png), '--image', f'{tmp_path}/image.h5:raw',
              '--min_overlap', '1')
  assert proc.returncode == 0, proc.stderr
  assert 'adapted Rand error' in proc.stdout and 'VI merge (bits)' in proc.stdout
  data = json.loads(out_json.read_text())
  assert data['rand_recall'] == pytest.approx(1.0)
  assert data['mergers'][0]['label'] == 1
  from PIL import Image  # pylint: disable=g-import-not-at-top
  # Two panels of (6 + 1 + 4) x (8 + 1 + 4) with a 4-pixel gap, enlarged to ~400 pixels.
  zoom = 400 // 13
  assert Image.open(out_png).size == ((13 + 4 + 13) * zoom, 11 * zoom)

  # The outputs exist now: without --overwrite the script refuses and leaves them alone.
  before = out_json.read_bytes()
  proc = _run(repo_root, '--segmentation', f'{tmp_path}/seg.h5:seg',
              '--groundtruth', f'{tmp_path}/gt.h5:stack', '--output_json', str(out_json))
  assert proc.returncode != 0 and '--overwrite' in proc.stderr
  assert out_json.read_bytes() == before


def test_script_bad_inputs(toy_files, repo_root):
  tmp_path, _, _ = toy_files
  out_json = tmp_path / 'bad.json'
  proc = _run(repo_root, '--segmentation', f'{tmp_path}/seg.h5:short',
              '--groundtruth', f'{tmp_path}/gt.h5:stack', '--output_json', str(out_json))
  assert proc.returncode != 0 and 'must match' in proc.stderr
  proc = _run(repo_root, '--segmentation', f'{tmp_path}/seg.h5:seg',
              '--groundtruth', f'{tmp_path}/gt.h5:stack', '--output_json', str(out_json),
              '--bounding_box', 'start { x: 10 y: 0 z: 0 } size { x: 5 y: 5 z: 5 }')
  assert proc.returncode != 0 and 'not inside' in proc.stderr
  proc = _run(repo_root, '--segmentation', f'{tmp_path}/seg.h5:seg',
              '--groundtruth', f'{tmp_path}/gt.h5:stack', '--bounding_box', 'start { q: 1 }')
  assert proc.returncode != 0 and 'BoundingBox' in proc.stderr
  assert not out_json.exists()
  assert not [p for p in os.listdir(tmp_path) if p.startswith('.bad.json')]


# ----------------------------------------------------------------------------
# CREMI's pair and ignored groundtruth labels.

# Scores the cremi package (cremi_python aa6d211, cremi/evaluation/voi.py and rand.py, run once
# under Python 3) gave on this case; see tests/fixtures/README.md.
CREMI_FIXTURE = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'cremi_evaluation.npz')


def _scores(result) -> list[float]:
  return [result.vi_split, result.vi_merge, result.adapted_rand_error, result.rand_precision,
          result.rand_recall]


def test_cremi_mode_gives_the_cremi_package_numbers():
  case = np.load(CREMI_FIXTURE)
  seg, gt = case['segmentation'], case['groundtruth']
  assert np.count_nonzero(seg == 0) and np.count_nonzero(gt == 0)  # Both conventions matter.
  cremi = ev.evaluate_arrays(seg, gt, seg_zero='cremi')
  np.testing.assert_allclose(_scores(cremi), case['scores'], rtol=1e-12, atol=0)
  [ignored] = case['ignore_label'].tolist()
  cremi = ev.evaluate_arrays(seg, gt, seg_zero='cremi', ignore_labels=[ignored])
  np.testing.assert_allclose(_scores(cremi), case['scores_ignoring'], rtol=1e-12, atol=0)
  assert cremi.ignored_label_voxels == {ignored: int(np.count_nonzero(gt == ignored))}

  # The other modes give other pairs on it: VI as 'segment', the Rand error as neither
  # (singletons' is close: cremi counts unsegmented voxels nearly as singletons).
  segment = ev.evaluate_arrays(seg, gt, seg_zero='segment')
  singletons = ev.evaluate_arrays(seg, gt, seg_zero='singletons')
  np.testing.assert_allclose(_scores(segment)[:2], case['scores'][:2], rtol=1e-12)
  assert abs(singletons.vi_split - case['scores'][0]) > 0.1
  assert abs(segment.adapted_rand_error - case['scores'][2]) > 0.01
  assert abs(singletons.adapted_rand_error - case['scores'][2]) > 1e-3


def test_cremi_rand_by_hand():
  gt = np.array([[[1, 1, 1, 1], [2, 2, 2, 2], [0, 0, 0, 0]]])  # (1, 3, 4): n = 12 voxels.
  seg = np.array([[[1, 1, 0, 0], [2, 2, 0, 0], [3, 3, 3, 3]]])
  result = ev.evaluate_arrays(seg, gt, seg_zero='cremi')
  # Ordered pairs with self-pairs: bodies 4^2 + 4^2; segments 2^2 + 2^2 plus c/n = 4/12 for
  # the 4 unsegmented voxels, added to the agreeing pairs too.
  agreeing = 4 + 4 + 4 / 12
  assert result.rand_precision == pytest.approx(agreeing / (4 + 4 + 4 / 12))
  assert result.rand_recall == pytest.approx(agreeing / 32)
  assert result.adapted_rand_error == pytest.approx(_f1_error(1.0, agreeing / 32))
  segment = ev.evaluate_arrays(seg, gt, seg_zero='segment')
  assert (result.vi_split, result.vi_merge) == (segment.vi_split, segment.vi_merge)
  assert 'cremi' in json.dumps(result.to_json_dict())


def test_ignore_labels_score_like_groundtruth_zero():
  gt = _two_bodies((2, 3, 6), split_x=2)
  gt[:, 0, :] = 9  # A third body, to be left out.
  seg = np.ones_like(gt)  # Merges everything.
  ignored = ev.evaluate_arrays(seg, gt, ignore_labels=[9, 0], min_overlap=1)
  zeroed = ev.evaluate_arrays(seg, np.where(gt == 9, 0, gt), min_overlap=1)
  assert _scores(ignored) == pytest.approx(_scores(zeroed))
  assert _scores(ignored) != pytest.approx(_scores(ev.evaluate_arrays(seg, gt)))
  assert ignored.ignored_label_voxels == {9: 12}
  assert ignored.scored_voxels == gt.size - 12
  assert 'groundtruth label 9 ignored: 12 voxels' in ev.format_report(ignored)
  # A label the dtype cannot hold is allowed and labels nothing.
  assert ev.evaluate_arrays(seg, gt, ignore_labels=[2**64 - 1]).ignored_label_voxels == {
      2**64 - 1: 0}
  with pytest.raises(ev.EvaluationError, match='ignore_labels.*-3'):
    ev.evaluate_arrays(seg, gt, ignore_labels=[-3])


def test_script_cremi_and_ignore_label(tmp_path, repo_root):
  case = np.load(CREMI_FIXTURE)
  with h5py.File(tmp_path / 'case.h5', 'w') as f:
    f['seg'] = case['segmentation']
    f['gt'] = case['groundtruth']
  [ignored] = case['ignore_label'].tolist()
  out = tmp_path / 'eval.json'
  proc = _run(repo_root, '--segmentation', f'{tmp_path}/case.h5:seg', '--groundtruth',
              f'{tmp_path}/case.h5:gt', '--seg_zero', 'cremi', '--ignore_label', str(ignored),
              '--noerl', '--output_json', str(out))
  assert proc.returncode == 0, proc.stderr
  data = json.loads(out.read_text())
  scores = [data[k] for k in ('vi_split', 'vi_merge', 'adapted_rand_error', 'rand_precision',
                              'rand_recall')]
  np.testing.assert_allclose(scores, case['scores_ignoring'], rtol=1e-12)
  assert data['ignored_label_voxels'] == {str(ignored): 22}
  assert "CREMI's pair" in proc.stdout
  proc = _run(repo_root, '--segmentation', f'{tmp_path}/case.h5:seg', '--groundtruth',
              f'{tmp_path}/case.h5:gt', '--ignore_label', '4,x', '--noerl')
  assert proc.returncode != 0 and "--ignore_label" in proc.stderr and "'x'" in proc.stderr
  assert 'Traceback' not in proc.stderr
