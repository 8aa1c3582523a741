"""The intensity seed policies against brute-force peak searches on small non-cubic images."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.morphology

from ffn.inference.policies import seed_intensity

from seed_reference import FakeCanvas
from seed_reference import local_maxima
from seed_reference import smooth_image
from seed_reference import with_noise


def _coords(policy) -> list[tuple]:
  policy.init_coords()
  return [tuple(int(v) for v in c) for c in policy.coords]


def test_max_peaks_zero_out_segmented_and_masked_voxels():
  image = smooth_image(shape=(14, 26, 30))
  image += 0.5 - image.min()  # Positive: zeroed voxels are darker than any other.
  segmentation = np.zeros(image.shape, np.int32)
  segmentation[2:6, 4:12, 5:15] = 3
  seed_mask = np.zeros(image.shape, bool)
  seed_mask[:, 12:, 14:] = True
  canvas = FakeCanvas(image, seed_mask=seed_mask, segmentation=segmentation)
  got = _coords(seed_intensity.PolicyMaxPeaks(canvas))

  values = image.copy()
  values[(segmentation > 0) | seed_mask] = 0
  expected = sorted(local_maxima(with_noise(values), 3, threshold_abs=0, threshold_rel=0))
  assert len(expected) >= 3 and got == expected
  # Excluded voxels only hold the noise peaks of their own zeroed interior.
  unmasked = sorted(local_maxima(with_noise(image), 3, threshold_abs=0, threshold_rel=0))
  assert got != unmasked


def test_max_peaks_arguments():
  image = smooth_image(seed_value=5)
  canvas = FakeCanvas(image)
  got = _coords(seed_intensity.PolicyMaxPeaks(canvas, min_distance=2, threshold_abs=0.5,
                                              threshold_rel=0.3))
  expected = sorted(local_maxima(with_noise(image), 2, threshold_abs=0.5, threshold_rel=0.3))
  assert got == expected
  assert len(expected) < len(local_maxima(with_noise(image), 2, threshold_abs=0,
                                          threshold_rel=0))


@pytest.mark.parametrize('d2,d3', [(2, 4), (1, -1), (-1, 2)])
def test_image_peaks_3d_then_2d(d2, d3):
  image = smooth_image(shape=(12, 20, 26), seed_value=7)
  got = _coords(seed_intensity.PolicyImagePeaks3D2D(FakeCanvas(image), min_distance_2d=d2,
                                                    min_distance_3d=d3))
  expected = local_maxima(image, d3) if d3 >= 0 else []
  if d2 >= 0:
    for z in range(image.shape[0]):
      expected += [(z,) + yx for yx in local_maxima(image[z], d2)]
  assert len(expected) > 3 and got == expected


@pytest.mark.parametrize('radius,threshold_rel', [(1, 0.5), (2, 0.2)])
def test_image_peaks_2d_disk(radius, threshold_rel):
  image = smooth_image(shape=(4, 24, 30), seed_value=9)
  got = _coords(seed_intensity.PolicyImagePeaks2DDisk(
      FakeCanvas(image), min_distance_2d=3, threshold_rel=threshold_rel, disk_radius=radius))
  disk = skimage.morphology.disk(radius)
  expected = []
  for z in range(image.shape[0]):
    expected += [(z,) + yx for yx in local_maxima(image[z], 3, threshold_rel=threshold_rel,
                                                   footprint=disk, p_norm=2)]
  assert len(expected) > 3 and got == expected


def _eroded_by_hand(selected: np.ndarray, times: int) -> np.ndarray:
  """Keeps voxels whose face neighbours inside the volume are all selected, `times` times."""
  for _ in range(times):
    out = selected.copy()
    for index in zip(*np.nonzero(selected)):
      for axis in range(3):
        for step in (-1, 1):
          n = list(index)
          n[axis] += step
          if 0 <= n[axis] < selected.shape[axis] and not selected[tuple(n)]:
            out[index] = False
    selected = out
  return selected


@pytest.mark.parametrize('erosions,invert', [(0, False), (1, False), (2, True)])
def test_dense_seeds(erosions, invert):
  image = smooth_image(shape=(5, 9, 13), seed_value=2)
  got = _coords(seed_intensity.PolicyDenseSeeds(FakeCanvas(image), threshold=0.2,
                                                num_erosions=erosions, invert=invert))
  selected = (image <= 0.2) if invert else (image > 0.2)
  expected = [tuple(int(v) for v in c) for c in np.argwhere(_eroded_by_hand(selected, erosions))]
  assert len(expected) > 3 and got == expected


def test_empty_results_are_n_by_3():
  flat = np.zeros((4, 9, 11), np.float32)
  for policy in (seed_intensity.PolicyImagePeaks3D2D(FakeCanvas(flat)),
                 seed_intensity.PolicyImagePeaks2DDisk(FakeCanvas(flat)),
                 seed_intensity.PolicyMaxPeaks(FakeCanvas(flat)),
                 seed_intensity.PolicyDenseSeeds(FakeCanvas(flat), threshold=1.0)):
    assert list(policy) == []
