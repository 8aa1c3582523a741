"""Scoring of hand-built resegmentation result files (zyx arrays, xyz protos)."""

from __future__ import annotations

import numpy as np
import pytest

from ffn.inference.io import probmaps
from ffn.inference.pipelines import resegmentation_analysis as analysis

# Subvolume radius (zyx) around the decision point x=6, y=5, z=3: corner zyx (1, 2, 2).
RADIUS = (2, 3, 4)
POINT_ZYX = (3, 5, 6)
SHAPE = (8, 10, 12)


def _objects(arrays):
  out = np.empty(len(arrays), dtype=object)
  for i, a in enumerate(arrays):
    out[i] = np.asarray(a, dtype=np.int64)
  return out


def _write(path, probs, deletes, histories, start_points):
  np.savez_compressed(path, probs=probmaps.quantize_probability(np.asarray(probs)),
                      deletes=_objects(deletes), histories=_objects(histories),
                      start_points=_objects(start_points))


def _segmentation():
  """Segment 1 at x < 6, segment 2 at x >= 6, within y 3..8 and z 2..5 (global zyx)."""
  seg = np.zeros(SHAPE, dtype=np.uint64)
  seg[2:5, 3:8, 2:6] = 1
  seg[2:5, 3:8, 6:10] = 2
  return seg


def test_pair_scores_by_hand(tmp_path):
  seg = _segmentation()
  sub = (slice(1, 6), slice(2, 9), slice(2, 11))  # the subvolume, 5 x 7 x 9
  from_a = np.zeros((5, 7, 9), dtype=np.float32)
  from_a[...] = (seg[sub] > 0)  # Both segments.
  from_b = np.zeros((5, 7, 9), dtype=np.float32)
  from_b[...] = (seg[sub] == 2)  # Only segment 2.
  from_b[0, 0, 0] = np.nan  # Never predicted: not part of the object.
  # FOV positions (subvolume zyx) and deleted voxels; with analysis radius
  # (1, 2, 3) the analysis box spans (1..3, 1..5, 1..7), so the second and
  # fourth moves of from_a are outside it.
  histories = [[(2, 3, 4), (0, 3, 4), (3, 5, 7), (2, 3, 8)], [(2, 3, 4)]]
  deletes = [[1, 100, 2, 100], [5]]
  path = tmp_path / 'sub' / '1-2_at_6_5_3.npz'
  path.parent.mkdir()
  _write(path, [from_a, from_b], deletes, histories, [[(9, 9, 9), (4, 3, 2)], [(6, 3, 2)]])

  result = analysis.evaluate_pair_resegmentation(str(path), seg, RADIUS, (1, 2, 3), (2.0, 1, 1))
  assert (result.id_a, result.id_b) == (1, 2)
  assert (result.point.x, result.point.y, result.point.z) == (6, 5, 3)
  assert (result.segmentation_radius.x, result.segmentation_radius.z) == (4, 2)
  ev = result.eval
  assert (ev.radius.x, ev.radius.y, ev.radius.z) == (3, 2, 1)
  # Analysis box: global z 2..4, y 3..7, x 3..9; segment 1 at x 3..5, 2 at x 6..9.
  assert ev.num_voxels_a == 3 * 5 * 3 and ev.num_voxels_b == 3 * 5 * 4
  assert ev.iou == pytest.approx(60 / 105)
  # The last start point is the one kept; start points are subvolume xyz.
  assert (ev.from_a.origin.x, ev.from_a.origin.y, ev.from_a.origin.z) == (4 + 2, 3 + 2, 2 + 1)
  assert (ev.from_b.origin.x, ev.from_b.origin.y, ev.from_b.origin.z) == (6 + 2, 3 + 2, 2 + 1)
  assert ev.from_a.deleted_voxels == 3 and ev.from_b.deleted_voxels == 5
  assert ev.from_a.num_voxels == 105 and ev.from_b.num_voxels == 60
  assert ev.from_a.segment_a_consistency == 1.0 and ev.from_a.segment_b_consistency == 1.0
  assert ev.from_b.segment_a_consistency == 0.0 and ev.from_b.segment_b_consistency == 1.0
  # Cropped to the box, segment 1 fills z and y; its only background is segment 2 at x >= 6,
  # 3 voxels from x = 3 (the box edge is not background).
  assert ev.max_edt_a == pytest.approx(3.0)
  assert not analysis.MergeRule().should_merge(result)


def test_incomplete_and_missing_segments(tmp_path):
  seg = _segmentation()
  one = tmp_path / '1-2_at_6_5_3.npz'
  _write(one, [np.ones((5, 7, 9))], [[0]], [[(2, 3, 4)]], [[(4, 3, 2)]])
  with pytest.raises(analysis.IncompleteResegmentationError, match='1 grown object'):
    analysis.evaluate_pair_resegmentation(str(one), seg, RADIUS, RADIUS, (1, 1, 1))
  absent = tmp_path / '1-7_at_6_5_3.npz'
  _write(absent, [np.ones((5, 7, 9))] * 2, [[0], [0]], [[(2, 3, 4)]] * 2, [[(4, 3, 2)]] * 2)
  with pytest.raises(analysis.InvalidBaseSegmentatonError, match='7'):
    analysis.evaluate_pair_resegmentation(str(absent), seg, RADIUS, RADIUS, (1, 1, 1))
  with pytest.raises(ValueError, match='not a resegmentation result name'):
    analysis.parse_resegmentation_filename('seg-0_0_0.npz')


def test_endpoint_overlaps(tmp_path):
  seg = _segmentation()
  grown = np.zeros((5, 7, 9), dtype=np.float32)
  grown[1:4, 1:6, 0:5] = 1.0  # Segment 1 in the subvolume (x 2..5) plus one column of 2.
  path = tmp_path / '1-0_at_6_5_3.npz'
  _write(path, [grown], [[0]], [[(2, 3, 4)]], [[(1, 3, 2)]])
  result = analysis.evaluate_endpoint_resegmentation(str(path), seg, RADIUS)
  assert result.id == 1 and result.num_voxels == 3 * 5 * 5
  assert result.overlaps[1].num_overlapping == 60 and result.overlaps[1].num_original == 60
  assert result.overlaps[2].num_overlapping == 15 and result.overlaps[2].num_original == 60
  assert result.source == result.overlaps[1]
  assert 0 not in result.overlaps


def test_compute_iou():
  masks = np.zeros((2, 1, 1, 4), dtype=bool)
  masks[0, 0, 0, :3] = True
  masks[1, 0, 0, 1:] = True
  assert analysis.compute_iou(masks) == pytest.approx(2 / 4)
  assert analysis.compute_iou(np.zeros((2, 1, 1, 1), dtype=bool)) == 0.0
