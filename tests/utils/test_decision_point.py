"""Decision points between segments, checked on layouts whose answer is known by hand."""

from __future__ import annotations

import itertools

import numpy as np

from ffn.utils import bounding_box
from ffn.utils import decision_point
from ffn.utils import labels


def _slabs(gap_z: int = 16, shape=(56, 30, 44)) -> np.ndarray:
  """Two z slabs, ids 3 and 8, with `gap_z` empty slices between them."""
  seg = np.zeros(shape, np.uint64)
  seg[:20] = 8
  seg[20 + gap_z:] = 3
  return seg


def test_two_slabs_meet_half_way_at_the_centre():
  points = decision_point.find_decision_points(_slabs(), (1, 1, 1))
  assert list(points) == [(3, 8)]
  dist, point = points[(3, 8)]
  # Growth meets between z 27 and 28, both 8 slices from their slab.
  assert dist == 8.0
  assert point.tolist() == [21, 14, 27]  # xyz: the centre of the meeting plane.


def test_voxel_size_is_xyz_and_scales_distances():
  points = decision_point.find_decision_points(_slabs(), (4, 4, 2.5))
  dist, point = points[(3, 8)]
  assert dist == 8.0 * 2.5 and point.tolist() == [21, 14, 27]


def test_three_segments_and_max_distance():
  seg = np.zeros((1, 130, 100), np.uint64)
  seg[0, :20, :20] = 1
  seg[0, :20, -20:] = 2
  seg[0, -20:, 40:60] = 3
  points = decision_point.find_decision_points(seg, (1, 1, 1))
  assert sorted(points) == [(1, 2), (1, 3), (2, 3)]
  # 1 and 2 meet on the vertical line x = 49.5, halfway, nearest at the top (y < 20).
  assert points[(1, 2)][0] == 30.0 and points[(1, 2)][1].tolist() == [49, 9, 0]
  near = decision_point.find_decision_points(seg, (1, 1, 1), max_distance=31.0)
  assert list(near) == [(1, 2)]


def test_subvol_box_limits_the_search_and_shifts_points():
  seg = _slabs()
  box = bounding_box.BoundingBox(start=(10, 5, 24), size=(20, 20, 10))  # xyz
  points = decision_point.find_decision_points(seg, (1, 1, 1), subvol_box=box)
  dist, point = points[(3, 8)]
  # The centre of the meeting plane's part inside the box, relative to the box.
  assert dist == 8.0 and point.tolist() == [9, 9, 3]  # x 10-29, y 5-24, z 27 - 24
  outside = bounding_box.BoundingBox(start=(0, 0, 0), size=(44, 30, 20))
  assert decision_point.find_decision_points(seg, (1, 1, 1), subvol_box=outside) == {}


def test_optimize_sparse_ignores_small_segments():
  seg = np.zeros((60, 30, 40), np.uint64)
  seg[:25] = 1
  seg[50:52, 0, 0] = 2  # A two-voxel speck.
  assert (1, 2) in decision_point.find_decision_points(seg, (1, 1, 1))
  assert (1, 2) in decision_point.find_decision_points(seg, (1, 1, 1), optimize_sparse=True)
  assert decision_point.find_decision_points(seg, (1, 1, 1), optimize_sparse=True,
                                             sparse_noise_threshold=3) == {}
  # With a third, large segment the speck takes no part, and `seg` is left as it was.
  seg[:, :, 35:] = 3
  before = seg.copy()
  points = decision_point.find_decision_points(seg, (1, 1, 1), optimize_sparse=True,
                                               sparse_noise_threshold=3)
  assert sorted(points) == [(1, 3)]
  np.testing.assert_array_equal(seg, before)
  seg[(seg == 2) | (seg == 3)] = 0
  assert decision_point.find_decision_points(seg, (1, 1, 1), optimize_sparse=True) == {}
  assert decision_point.find_decision_points(np.zeros((4, 5, 6), np.uint64), (1, 1, 1)) == {}


def test_matches_a_voxel_by_voxel_search_on_random_segments():
  rng = np.random.RandomState(3)
  seg = np.zeros((9, 14, 17), np.uint64)
  for sid in (5, 9, 12, 40):
    z, y, x = rng.randint(0, 9), rng.randint(0, 14), rng.randint(0, 17)
    seg[max(z - 1, 0):z + 2, max(y - 2, 0):y + 2, max(x - 2, 0):x + 3] = sid
  voxel_size = (1.0, 1.5, 2.0)
  expanded, distance = labels.watershed_expand(seg, voxel_size)
  assert np.all(expanded > 0) and np.all(expanded[seg > 0] == seg[seg > 0])

  # Every touching pair of voxels within one 2x2x2 cell, by hand.
  best = {}
  shape = seg.shape
  for p in itertools.product(*(range(s) for s in shape)):
    for d in itertools.product((0, 1), repeat=3):
      q = tuple(c + o for c, o in zip(p, d))
      if d == (0, 0, 0) or any(c >= s for c, s in zip(q, shape)):
        continue
      a, b = int(expanded[p]), int(expanded[q])
      if a == b:
        continue
      key = (min(a, b), max(a, b))
      dist = (distance[p] + distance[q]) / 2
      best.setdefault(key, []).append((dist, p))
  points = decision_point.find_decision_points(seg, voxel_size)
  assert sorted(points) == sorted(best)
  for key, candidates in best.items():
    low = min(d for d, _ in candidates)
    nearest = np.array(sorted({p for d, p in candidates if d == low}))[:, ::-1]
    dist, point = points[key]
    assert dist == low
    # The chosen point is one of the nearest, and closest to their centroid.
    spread = np.sum(np.square(nearest - nearest.mean(axis=0)), axis=1)
    assert point.tolist() in nearest.tolist()
    assert np.sum(np.square(point - nearest.mean(axis=0))) == spread.min()
