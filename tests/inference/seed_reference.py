"""Brute-force references for the seed policy tests: peak search written out voxel by voxel."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ffn.inference.policies import movement


def local_maxima(values: np.ndarray, min_distance: int, threshold_abs=None,
                 threshold_rel=None, footprint=None, p_norm: float = np.inf) -> list[tuple]:
  """What skimage's peak_local_max (exclude_border=True) promises, one voxel at a time.

  A peak is at least `min_distance` from the border, equals the maximum of
  its footprint (a (2 min_distance + 1) cube by default; indices past the
  border clamp to it) and exceeds the threshold (the image minimum, raised to
  threshold_rel * maximum). Peaks come brightest first; one closer than
  `min_distance` (p-norm) to a brighter kept peak is dropped.
  """
  threshold = values.min() if threshold_abs is None else threshold_abs
  if threshold_rel is not None:
    threshold = max(threshold, threshold_rel * values.max())
  if footprint is None:
    footprint = np.ones((2 * min_distance + 1,) * values.ndim, bool)
  offsets = np.argwhere(footprint) - np.array(footprint.shape) // 2
  shape = np.array(values.shape)
  candidates = []
  for index in np.ndindex(*values.shape):
    if any(c < min_distance or c >= s - min_distance for c, s in zip(index, shape)):
      continue
    neighbours = np.clip(np.array(index) + offsets, 0, shape - 1)
    value = values[index]
    if value == values[tuple(neighbours.T)].max() and value > threshold:
      candidates.append(index)
  candidates.sort(key=lambda i: -values[i])  # Stable: C order among equal values.
  if min_distance <= 1:
    return candidates
  kept = []
  for c in candidates:
    if all(np.linalg.norm(np.subtract(c, k), ord=p_norm) >= min_distance for k in kept):
      kept.append(c)
  return kept


def with_noise(values: np.ndarray) -> np.ndarray:
  """`values` plus the seed policies' fixed tie-breaking noise (MT19937 seeded 42, x 1e-4)."""
  return values + np.random.RandomState(42).random_sample(values.shape) * 1e-4


_ALIVE = []  # Policies hold weak proxies of their canvas.


class FakeCanvas:
  """The canvas attributes the seed policies read."""

  def __init__(self, image, margin=(0, 0, 0), mask=None, seed_mask=None, segmentation=None,
               voxel_size_zyx=(1, 1, 1)):
    self.image = image
    self.shape = image.shape
    self.margin = np.array(margin)
    self.restrictor = movement.MovementRestrictor(mask=mask, seed_mask=seed_mask)
    self.segmentation = (np.zeros(image.shape, np.int32) if segmentation is None
                         else segmentation)
    self.voxel_size_zyx = voxel_size_zyx
    _ALIVE.append(self)


def smooth_image(shape=(10, 20, 24), seed_value=3) -> np.ndarray:
  """A smooth random float32 image without ties: bright blobs on a darker background."""
  rng = np.random.RandomState(seed_value)
  image = ndimage.gaussian_filter(rng.rand(*shape), 1.5)
  return ((image - image.mean()) / image.std()).astype(np.float32)
