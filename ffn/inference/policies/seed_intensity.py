"""Seed policies that start objects at bright image voxels (from upstream's HEAD).

For images where objects are bright (e.g. predicted foreground or nuclei
stains) rather than bounded by dark membranes. `seed` re-exports them.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage
import skimage.feature
import skimage.morphology

from ffn.inference.policies import seed_base
from ffn.utils import checks


def _with_z(z: int, yx: np.ndarray) -> np.ndarray:
  """(N, 3) zyx coordinates from the (N, 2) yx peaks of slice `z`."""
  yx = np.asarray(yx, np.int64).reshape(-1, 2)
  return np.concatenate([np.full((len(yx), 1), z, np.int64), yx], axis=1)


def _stacked(parts: list[np.ndarray]) -> np.ndarray:
  """Row-wise concatenation of (N, 3) arrays; (0, 3) when there are none."""
  parts = [np.asarray(p, np.int64).reshape(-1, 3) for p in parts]
  return np.concatenate(parts) if parts else np.zeros((0, 3), np.int64)


class PolicyMaxPeaks(seed_base.BaseSeedPolicy):
  """Local intensity maxima outside segmented and masked voxels, in zyx order."""

  ARGUMENT_RANGES = {'min_distance': checks.POSITIVE_INT, 'threshold_abs': checks.ANY,
                     'threshold_rel': checks.UNIT}

  def __init__(self, canvas, min_distance: int = 3, threshold_abs: float = 0,
               threshold_rel: float = 0, **kwargs):
    super().__init__(canvas, **kwargs)
    self.min_distance = int(min_distance)
    self.threshold_abs = threshold_abs
    self.threshold_rel = threshold_rel

  def init_coords(self) -> None:
    image = np.asarray(self.canvas.image, np.float32).copy()
    image[self.get_exclusion_mask()] = 0
    peaks = seed_base.find_peaks(image, min_distance=self.min_distance,
                            threshold_abs=self.threshold_abs, threshold_rel=self.threshold_rel)
    self.coords = seed_base.lexsorted(peaks)
    logging.info('max peaks: found %d local maxima', len(self.coords))


class PolicyImagePeaks3D2D(seed_base.BaseSeedPolicy):
  """3-D intensity maxima, then each z slice's 2-D maxima; a negative distance skips a pass."""

  ARGUMENT_RANGES = {'min_distance_2d': checks.Range(integer=True),
                     'min_distance_3d': checks.Range(integer=True)}

  def __init__(self, canvas, min_distance_2d: int = 2, min_distance_3d: int = 4, **kwargs):
    super().__init__(canvas, **kwargs)
    self.min_distance_2d = int(min_distance_2d)
    self.min_distance_3d = int(min_distance_3d)

  def init_coords(self) -> None:
    image = np.asarray(self.canvas.image)
    parts = []
    if self.min_distance_3d >= 0:
      parts.append(skimage.feature.peak_local_max(image, min_distance=self.min_distance_3d))
    if self.min_distance_2d >= 0:
      parts.extend(_with_z(z, skimage.feature.peak_local_max(
          image[z], min_distance=self.min_distance_2d)) for z in range(image.shape[0]))
    # Within each pass, brightest first (peak_local_max's order).
    self.coords = _stacked(parts)


class PolicyImagePeaks2DDisk(seed_base.BaseSeedPolicy):
  """Each z slice's 2-D intensity maxima over a disk, above a fraction of the slice maximum."""

  ARGUMENT_RANGES = {'min_distance_2d': checks.POSITIVE_INT, 'threshold_rel': checks.UNIT,
                     'disk_radius': checks.NON_NEGATIVE_INT}

  def __init__(self, canvas, min_distance_2d: int = 3, threshold_rel: float = 0.5,
               disk_radius: int = 1, **kwargs):
    super().__init__(canvas, **kwargs)
    self.min_distance_2d = int(min_distance_2d)
    self.threshold_rel = threshold_rel
    self.disk_radius = int(disk_radius)

  def init_coords(self) -> None:
    image = np.asarray(self.canvas.image)
    footprint = skimage.morphology.disk(self.disk_radius)
    self.coords = _stacked([_with_z(z, skimage.feature.peak_local_max(
        image[z], min_distance=self.min_distance_2d, p_norm=2,
        threshold_rel=self.threshold_rel, exclude_border=True, footprint=footprint))
                            for z in range(image.shape[0])])


class PolicyDenseSeeds(seed_base.BaseSeedPolicy):
  """Every voxel above `threshold` (below, with `invert`), after `num_erosions` erosions."""

  ARGUMENT_RANGES = {'threshold': checks.ANY, 'num_erosions': checks.NON_NEGATIVE_INT}

  def __init__(self, canvas, threshold: float = 0.5, num_erosions: int = 0,
               invert: bool = False, **kwargs):
    super().__init__(canvas, **kwargs)
    self.threshold = threshold
    self.num_erosions = int(num_erosions)
    self.invert = bool(invert)

  def init_coords(self) -> None:
    selected = np.asarray(self.canvas.image) > self.threshold
    if self.invert:
      selected = ~selected
    if self.num_erosions > 0:
      # Face-connected erosion; voxels outside the image do not erode the border.
      cross = ndimage.generate_binary_structure(selected.ndim, 1)
      selected = ndimage.binary_erosion(selected, structure=cross,
                                        iterations=self.num_erosions, border_value=1)
    self.coords = np.argwhere(selected).astype(np.int64)
