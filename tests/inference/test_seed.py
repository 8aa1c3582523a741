"""Tests of the seed policies on small non-cubic synthetic volumes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy import spatial

from ffn.inference.io import results
from ffn.inference.policies import seed

from seed_reference import FakeCanvas as _Canvas
from seed_reference import local_maxima
from seed_reference import with_noise


def _cells_image(shape=(14, 22, 30), seed_value=3):
  """A smooth random 'cell' image: bright blobs separated by dark membranes."""
  rng = np.random.RandomState(seed_value)
  image = ndimage.gaussian_filter(rng.rand(*shape).astype(np.float32), 2.0)
  return (image - image.mean()) / image.std()


def _brute_force_edt(background: np.ndarray, voxel_size=(1, 1, 1)) -> np.ndarray:
  """Distance of each voxel to the nearest False voxel, by an exact nearest-neighbour search."""
  scale = np.asarray(voxel_size, np.float64)
  targets = spatial.cKDTree(np.argwhere(~background) * scale)
  distances, _ = targets.query(np.argwhere(np.ones_like(background)) * scale)
  return distances.reshape(background.shape)


def _brute_force_peaks(image, mask=None, seed_mask=None, segmentation=None,
                       voxel_size=(1, 1, 1)):
  """PolicyPeaks' recipe with the distance transform and peak search written out by hand."""
  edges = ndimage.generic_gradient_magnitude(image.astype(np.float32), ndimage.sobel)
  level = np.zeros(edges.shape, dtype=np.float32)
  ndimage.gaussian_filter(edges, 49.0 / 6.0, output=level, mode='reflect')
  is_edge = edges > level
  excluded = np.zeros(image.shape, bool) if segmentation is None else segmentation > 0
  for m in (mask, seed_mask):
    if m is not None:
      is_edge[m] = True
      excluded |= m
  dt = _brute_force_edt(~is_edge, voxel_size).astype(np.float32)
  dt[excluded] = -1
  noisy = with_noise(dt)
  return sorted(local_maxima(noisy, 3, threshold_abs=0, threshold_rel=0))


@pytest.mark.parametrize('use_mask', [False, True])
def test_policy_peaks_matches_brute_force_in_order(use_mask):
  image = _cells_image()
  mask = None
  if use_mask:
    mask = np.zeros(image.shape, dtype=bool)
    mask[:, :, 20:] = True
  policy = seed.PolicyPeaks(_Canvas(image, mask=mask))
  policy.init_coords()
  expected = _brute_force_peaks(image, mask)
  assert len(expected) >= 5
  assert [tuple(c) for c in policy.coords] == expected


def test_policy_peaks_exclusions_and_anisotropy_match_brute_force():
  image = _cells_image(shape=(14, 30, 36), seed_value=4)
  seed_mask = np.zeros(image.shape, dtype=bool)
  seed_mask[:, 15:, :6] = True
  segmentation = np.zeros(image.shape, np.int32)
  segmentation[2:6, 3:9, 10:25] = 4
  voxel_size = (1.6, 1.0, 1.2)
  policy = seed.PolicyPeaks(_Canvas(image, seed_mask=seed_mask, segmentation=segmentation,
                                    voxel_size_zyx=voxel_size))
  policy.init_coords()
  expected = _brute_force_peaks(image, seed_mask=seed_mask, segmentation=segmentation,
                                voxel_size=voxel_size)
  got = [tuple(c) for c in policy.coords]
  assert len(expected) > 5 and got == expected
  assert not any(seed_mask[c] or segmentation[c] for c in got)
  # The voxel size matters: isotropic distances give other peaks.
  isotropic = seed.PolicyPeaks(_Canvas(image, seed_mask=seed_mask, segmentation=segmentation))
  isotropic.init_coords()
  assert [tuple(c) for c in isotropic.coords] != got


def test_policy_peaks_on_an_all_edge_image_yields_nothing():
  image = _cells_image()
  policy = seed.PolicyPeaks(_Canvas(image, mask=np.ones(image.shape, bool)))
  assert list(policy) == []


def test_policy_peaks_does_not_disturb_global_rng():
  np.random.seed(7)
  before = np.random.random()
  np.random.seed(7)
  policy = seed.PolicyPeaks(_Canvas(_cells_image()))
  policy.init_coords()
  assert np.random.random() == before


def test_base_policy_skips_border_and_resumes():
  image = np.zeros((6, 8, 10), dtype=np.float32)
  policy = seed.PolicyGrid3d(_Canvas(image, margin=(1, 2, 2)), step=2, offsets=(0,))
  seeds = list(policy)
  assert seeds and all(1 <= z < 5 and 2 <= y < 6 and 2 <= x < 8 for z, y, x in seeds)
  assert seeds == sorted(seeds)

  # The state of a policy can be captured mid-way and picked up by another.
  first = seed.PolicyGrid3d(_Canvas(image, margin=(1, 2, 2)), step=2, offsets=(0,))
  taken = [next(first), next(first)]
  other = seed.PolicyGrid3d(_Canvas(image, margin=(1, 2, 2)), step=2, offsets=(0,))
  other.set_state(first.get_state(previous=True))
  assert next(other) == taken[1]
  other.set_state(first.get_state())
  assert [taken[0], taken[1]] + list(other) == seeds


def test_policy_grid3d_and_grid2d_exact_coordinates():
  image = np.zeros((3, 5, 7), dtype=np.float32)
  grid3 = seed.PolicyGrid3d(_Canvas(image), step=4, offsets=(0, 2))
  grid3.init_coords()
  expected = [(z, y, x) for o in (0, 2) for z in range(o, 3, 4)
              for y in range(o, 5, 4) for x in range(o, 7, 4)]
  assert [tuple(c) for c in grid3.coords] == expected

  grid2 = seed.PolicyGrid2d(_Canvas(image), step=4, offsets=(1, 3))
  grid2.init_coords()
  expected = [(z, y, x) for o in (1, 3) for z in range(3)
              for y in range(o, 5, 4) for x in range(o, 7, 4)]
  assert [tuple(c) for c in grid2.coords] == expected


def test_policy_max_descending_intensity():
  rng = np.random.RandomState(0)
  image = rng.permutation(3 * 4 * 5).reshape(3, 4, 5).astype(np.float32)
  policy = seed.PolicyMax(_Canvas(image))
  values = [image[s] for s in policy]
  assert len(values) == image.size
  assert values == sorted(values, reverse=True)


def test_policy_peaks2d_honours_its_arguments():
  image = _cells_image(shape=(4, 40, 48), seed_value=5)
  loose = seed.PolicyPeaks2d(_Canvas(image), min_distance=2, threshold_abs=0)
  loose.init_coords()
  strict = seed.PolicyPeaks2d(_Canvas(image), min_distance=6, threshold_abs=2.5)
  strict.init_coords()
  assert 0 < len(strict.coords) < len(loose.coords)
  coords = [tuple(c) for c in loose.coords]
  assert coords == sorted(coords) and {c[0] for c in coords} == set(range(4))
  # Peaks of one slice are at least min_distance apart (Chebyshev).
  for z in range(4):
    pts = strict.coords[strict.coords[:, 0] == z][:, 1:]
    if len(pts) > 1:
      d = np.abs(pts[:, None] - pts[None]).max(-1)
      assert d[~np.eye(len(pts), dtype=bool)].min() >= 6

  descending = seed.PolicyPeaks2d(_Canvas(image), min_distance=2, threshold_abs=0,
                                  sort_cmp='descending')
  descending.init_coords()
  assert [tuple(c) for c in descending.coords] == coords[::-1]


def test_policy_invert_origins(tmp_path):
  corner = (0, 10, 20)
  origins = {1: results.OriginInfo((3, 4, 5), 2, 0.1),
             7: results.OriginInfo((1, 2, 3), 1, 0.1),
             3: results.OriginInfo((5, 6, 7), 4, 0.1)}
  results.save_subvolume(np.zeros((8, 9, 10), dtype=np.uint64), origins,
                         results.segmentation_path(str(tmp_path), corner))
  policy = seed.PolicyInvertOrigins(_Canvas(np.zeros((8, 9, 10), np.float32)),
                                    corner=corner, segmentation_dir=str(tmp_path))
  assert list(policy) == [(1, 2, 3), (5, 6, 7), (3, 4, 5)]


def test_policy_fill_empty_space_matches_brute_force():
  rng = np.random.RandomState(8)
  segmentation = (ndimage.gaussian_filter(rng.rand(12, 22, 26), 1.0) > 0.5).astype(np.int32)
  policy = seed.PolicyFillEmptySpace(_Canvas(np.zeros(segmentation.shape, np.float32),
                                             segmentation=segmentation))
  policy.init_coords()
  dt = _brute_force_edt(segmentation == 0).astype(np.float32)
  expected = sorted(local_maxima(with_noise(dt), 2, threshold_abs=0.5, threshold_rel=0))
  got = [tuple(c) for c in policy.coords]
  assert len(expected) > 3 and got == expected
  assert not any(segmentation[c] for c in got)
