"""Tests of the identity alignment, in particular align_and_crop on partial overlaps."""

from __future__ import annotations

import numpy as np
import pytest

from ffn.utils import align


def _reference_paste(src_corner, source, dst_corner, dst_size, fill):
  """Voxel-by-voxel placement of `source` into the destination box."""
  out = np.full(dst_size, fill, dtype=source.dtype)
  for idx in np.ndindex(*source.shape):
    glob = np.add(idx, src_corner)
    local = glob - np.asarray(dst_corner)
    if np.all(local >= 0) and np.all(local < np.asarray(dst_size)):
      out[tuple(local)] = source[idx]
  return out


def test_identity_geometry_returns_source_itself():
  src = np.arange(2 * 3 * 4).reshape(2, 3, 4)
  alignment = align.Alignment((1, 2, 3), (2, 3, 4))
  assert alignment.align_and_crop((1, 2, 3), src, (1, 2, 3), (2, 3, 4)) is src


@pytest.mark.parametrize('src_corner, dst_corner, dst_size', [
    ((0, 0, 0), (1, 2, 1), (2, 2, 5)),     # destination inside the source
    ((5, 5, 5), (3, 4, 2), (4, 3, 6)),     # source partly inside the destination
    ((0, 0, 0), (-2, 1, -3), (4, 5, 6)),   # destination hangs off the low side
    ((0, 0, 0), (1, 2, 3), (3, 4, 5)),     # destination hangs off the high side
    ((0, 0, 0), (10, 0, 0), (2, 2, 2)),    # no overlap at all
    ((2, 1, 0), (0, 0, 0), (7, 8, 9)),     # source entirely inside
])
def test_align_and_crop_matches_voxelwise_reference(src_corner, dst_corner, dst_size):
  rng = np.random.default_rng(0)
  source = rng.integers(1, 100, size=(3, 4, 5)).astype(np.int32)
  alignment = align.Alignment(dst_corner, dst_size)
  got = alignment.align_and_crop(src_corner, source, dst_corner, dst_size, fill=-7)
  want = _reference_paste(src_corner, source, dst_corner, dst_size, -7)
  assert got.shape == tuple(dst_size)
  assert got.dtype == source.dtype
  np.testing.assert_array_equal(got, want)


def test_default_fill_is_zero_and_source_unchanged():
  source = np.ones((2, 3, 4), dtype=np.uint8)
  alignment = align.Alignment((0, 0, 0), (2, 3, 4))
  got = alignment.align_and_crop((0, 0, 0), source, (0, 1, 2), (2, 3, 4))
  assert got[0, 0, 0] == 1 and got[1, 2, 3] == 0
  assert got.sum() == 2 * 2 * 2
  np.testing.assert_array_equal(source, 1)


def test_identity_methods():
  alignment = align.Aligner().generate_alignment((1, 2, 3), (4, 5, 6))
  assert isinstance(alignment, align.Alignment)
  assert alignment.corner == (1, 2, 3) and alignment.size == (4, 5, 6)
  assert alignment.expand_bounds((7, 8, 9), (1, 2, 3), forward=False) == ((7, 8, 9), (1, 2, 3))
  points = np.array([[1, 2], [3, 4], [5, 6]])
  assert alignment.transform(points) is points
  shift = np.zeros((2, 1, 3, 3))
  assert alignment.transform_shift_mask((0, 0, 0), 2, shift) is shift
  scaled = alignment.rescaled((1, 2, 4))
  np.testing.assert_array_equal(scaled.corner, (1, 4, 12))
  np.testing.assert_array_equal(scaled.size, (4, 10, 24))
