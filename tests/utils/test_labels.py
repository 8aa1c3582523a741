"""Tests for ffn.utils.labels against small brute-force references."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import scipy.ndimage

from ffn.utils import labels as segmentation


def _random_labels(shape, num_ids, seed, dtype=np.uint64):
  rng = np.random.default_rng(seed)
  return rng.integers(0, num_ids, size=shape).astype(dtype)


class TestMakeLabelsContiguous:

  def test_sorted_ids_map_to_range(self):
    labels = np.array([[[7, 0, 300], [7, 7, 2**40]]], dtype=np.uint64)
    relabeled, pairs = segmentation.make_labels_contiguous(labels)
    assert pairs == [(0, 0), (7, 1), (300, 2), (2**40, 3)]
    np.testing.assert_array_equal(relabeled, [[[1, 0, 2], [1, 1, 3]]])
    assert relabeled.shape == labels.shape

  def test_without_zero_smallest_id_becomes_background(self):
    # The documented upstream quirk: no 0 in the input means id 5 turns into 0.
    relabeled, pairs = segmentation.make_labels_contiguous(np.array([5, 9, 5]))
    np.testing.assert_array_equal(relabeled, [0, 1, 0])
    assert pairs == [(5, 0), (9, 1)]

  def test_pairs_are_a_reusable_list(self):
    _, pairs = segmentation.make_labels_contiguous(np.arange(4).reshape(2, 2))
    assert list(pairs) == list(pairs)


class TestClearDust:

  @pytest.mark.parametrize('dtype', [np.uint64, np.int64, np.int32, np.uint8])
  def test_matches_counting_reference(self, dtype):
    data = _random_labels((5, 6, 7), 30, seed=1, dtype=dtype)
    expected = data.copy()
    counts = collections.Counter(expected.ravel().tolist())
    for value, count in counts.items():
      if count < 8:
        expected[expected == value] = 0
    result = segmentation.clear_dust(data, min_size=8)
    assert result is data
    np.testing.assert_array_equal(data, expected)
    assert data.dtype == dtype

  def test_large_and_negative_ids_use_the_general_path(self):
    data = np.array([2**50, 2**50, 3, -1, -1, -1], dtype=np.int64)
    segmentation.clear_dust(data, min_size=3)
    np.testing.assert_array_equal(data, [0, 0, 0, -1, -1, -1])

  def test_zero_is_never_relabelled_and_min_size_zero_is_a_no_op(self):
    data = np.array([0, 1, 1, 2], dtype=np.uint32)
    segmentation.clear_dust(data, min_size=0)
    np.testing.assert_array_equal(data, [0, 1, 1, 2])
    segmentation.clear_dust(data, min_size=2)
    np.testing.assert_array_equal(data, [0, 1, 1, 0])


class TestReduceIdBits:

  @pytest.mark.parametrize('max_id,dtype', [(255, np.uint8), (256, np.uint16),
                                            (65536, np.uint32), (2**32, np.uint64)])
  def test_smallest_dtype(self, max_id, dtype):
    seg = np.array([0, 1, max_id], dtype=np.uint64)
    out = segmentation.reduce_id_bits(seg)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, seg)


class TestSplitDisconnectedComponents:

  def _reference(self, labels, connectivity):
    structure = scipy.ndimage.generate_binary_structure(3, connectivity)
    out = np.zeros(labels.shape, np.int64)
    next_id = 0
    for value in np.unique(labels):
      if value == 0:
        continue
      components, n = scipy.ndimage.label(labels == value, structure)
      out[components > 0] = components[components > 0] + next_id
      next_id += n
    return out

  @pytest.mark.parametrize('connectivity', [1, 2, 3])
  def test_same_partition_as_reference(self, connectivity):
    labels = _random_labels((4, 5, 6), 4, seed=connectivity)
    result = segmentation.split_disconnected_components(labels, connectivity=connectivity)
    reference = self._reference(labels, connectivity)
    assert result.dtype == labels.dtype
    np.testing.assert_array_equal(result == 0, labels == 0)
    # Same partition: a one-to-one correspondence between ids.
    pairs = set(zip(result.ravel().tolist(), reference.ravel().tolist()))
    assert len(pairs) == len(np.unique(result)) == len(np.unique(reference))
    nonzero = np.unique(result[result > 0])
    np.testing.assert_array_equal(nonzero, np.arange(1, nonzero.size + 1))

  def test_raster_order_ids(self):
    labels = np.zeros((1, 3, 5), np.int32)
    labels[0, 0, :2] = 9
    labels[0, 0, 3:] = 9
    labels[0, 2, :] = 4
    result = segmentation.split_disconnected_components(labels)
    np.testing.assert_array_equal(result[0], [[1, 1, 0, 2, 2], [0] * 5, [3] * 5])

  def test_bad_connectivity(self):
    with pytest.raises(ValueError, match='connectivity'):
      segmentation.split_disconnected_components(np.ones((2, 2, 2), np.int32), connectivity=4)


class TestCleanUp:

  def test_split_and_dust_with_id_map(self):
    seg = np.zeros((2, 4, 6), np.uint64)
    seg[:, :, :2] = 5        # 16 voxels
    seg[:, :, 4:] = 5        # disconnected part of 5, 16 voxels
    seg[0, 0, 3] = 8         # a single voxel
    original = seg.copy()
    id_map = segmentation.clean_up(seg, split_cc=True, min_size=2, return_id_map=True)
    assert seg.dtype == np.uint64
    # Component ids are given in raster order before dust removal, so 2 (the dust) is gone.
    assert set(np.unique(seg).tolist()) == {0, 1, 3}
    assert seg[0, 0, 3] == 0
    assert seg[0, 0, 0] != seg[0, 0, 5]
    for new_id, orig in id_map.items():
      if new_id:
        np.testing.assert_array_equal(np.unique(original[seg == new_id]), [orig])
    assert id_map[int(seg[0, 0, 0])] == 5 and id_map[int(seg[0, 0, 5])] == 5

  def test_without_split_keeps_ids(self):
    seg = np.array([[[3, 3, 0, 3, 7]]], np.uint64)
    assert segmentation.clean_up(seg, split_cc=False, min_size=2) is None
    np.testing.assert_array_equal(seg, [[[3, 3, 0, 3, 0]]])

  def test_counts(self):
    seg = np.array([[[3, 3, 0, 4]]], np.uint64)
    _, counts = segmentation.clean_up_and_count(seg, split_cc=False, compute_id_map=False)
    assert counts == {0: 1, 3: 2, 4: 1}


def _intersection_reference(a, b, min_size):
  """Straightforward pair-by-pair version of the intersection split."""
  a_flat, b_flat = a.ravel().tolist(), b.ravel().tolist()
  counts = collections.Counter(zip(a_flat, b_flat))
  best = {}
  for (ia, ib), count in sorted(counts.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    if ia not in best or best[ia][1] < count or (best[ia][1] == count and ib < best[ia][0]):
      best[ia] = (ib, count)
  next_id = max(a_flat)
  new_ids = {}
  for ia, ib in sorted(counts, key=lambda p: (p[1], p[0])):
    if counts[(ia, ib)] < min_size or ia == 0:
      new_ids[(ia, ib)] = 0
    elif best[ia][0] == ib:
      new_ids[(ia, ib)] = ia
    else:
      next_id += 1
      new_ids[(ia, ib)] = next_id
  return np.array([new_ids[p] for p in zip(a_flat, b_flat)], np.uint64).reshape(a.shape)


class TestSplitSegmentationByIntersection:

  @pytest.mark.parametrize('seed', range(4))
  @pytest.mark.parametrize('min_size', [0, 3])
  def test_matches_reference(self, seed, min_size):
    a = _random_labels((3, 4, 5), 4, seed)
    b = _random_labels((3, 4, 5), 3, seed + 100)
    expected = _intersection_reference(a, b, min_size)
    b_before = b.copy()
    segmentation.split_segmentation_by_intersection(a, b, min_size)
    np.testing.assert_array_equal(a, expected)
    np.testing.assert_array_equal(b, b_before)

  def test_ids_above_32_bits(self):
    big = 2**40
    a = np.array([big, big, big, 0, 7], np.uint64)
    b = np.array([1, 1, 2, 1, 2], np.uint64)
    segmentation.split_segmentation_by_intersection(a, b, 0)
    np.testing.assert_array_equal(a, [big, big, big + 1, 0, 7])

  def test_rejects_wrong_input(self):
    with pytest.raises(ValueError, match='shape'):
      segmentation.split_segmentation_by_intersection(
          np.zeros(3, np.uint64), np.zeros(4, np.uint64), 0)
    with pytest.raises(TypeError, match='uint64'):
      segmentation.split_segmentation_by_intersection(
          np.zeros(3, np.int32), np.zeros(3, np.int32), 0)
