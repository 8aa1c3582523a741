"""Where objects start: seed policies yielding zyx positions inside a canvas.

A policy is built with the canvas and keyword arguments (the Runner passes
`corner`, `subvol_size` and the JSON `seed_policy_args`) and iterated for
seed positions. Its `(coords, idx)` state can be saved and restored.
"""

from __future__ import annotations

import logging
import weakref

import numpy as np
from scipy import ndimage
import skimage.feature

from ffn.inference import results

_PEAKS_SIGMA = 49.0 / 6.0
_NOISE_SEED = 42
_NOISE_SCALE = 1e-4


class BaseSeedPolicy:
  """Iterates over `coords` (computed on first use), skipping the canvas border."""

  def __init__(self, canvas, **kwargs):
    del kwargs  # corner, subvol_size etc. are only used by some policies.
    # A proxy, so that the canvas (which holds the policy) can be collected.
    self.canvas = weakref.proxy(canvas)
    self.coords: np.ndarray | None = None
    self.idx = 0

  def init_coords(self) -> None:
    """Computes `self.coords`, an (N, 3) zyx array in seeding order."""
    raise NotImplementedError()

  def __iter__(self):
    return self

  def __next__(self) -> tuple[int, int, int]:
    if self.coords is None:
      self.init_coords()
    low = tuple(int(m) for m in self.canvas.margin)
    high = tuple(int(s) - m for s, m in zip(self.canvas.shape, low))
    while self.idx < len(self.coords):
      pos = tuple(int(v) for v in self.coords[self.idx])
      self.idx += 1
      # Cheap early rejection of positions without full image context.
      if all(a <= p < b for p, a, b in zip(pos, low, high)):
        return pos
    raise StopIteration()

  def get_state(self, previous: bool = False):
    """(coords, idx); with `previous`, idx points back at the last yielded seed."""
    idx = max(0, self.idx - 1) if previous else self.idx
    return self.coords, idx

  def set_state(self, state) -> None:
    coords, idx = state
    self.coords = None if coords is None else np.asarray(coords)
    self.idx = int(idx)


def _reproducible_noise(shape) -> np.ndarray:
  """U[0, 1) noise from numpy's legacy MT19937 seeded with 42 (upstream's stream)."""
  return np.random.RandomState(_NOISE_SEED).random_sample(shape)


def _edge_distance_peaks(image: np.ndarray, excluded: np.ndarray | None,
                         min_distance: int, threshold_abs: float) -> np.ndarray:
  """Peaks of the distance to adaptively thresholded Sobel edges of `image`."""
  edges = ndimage.generic_gradient_magnitude(image.astype(np.float32), ndimage.sobel)
  local_level = np.zeros(edges.shape, dtype=np.float32)
  ndimage.gaussian_filter(edges, _PEAKS_SIGMA, output=local_level, mode='reflect')
  is_edge = edges > local_level
  del edges, local_level
  # Masked areas count as edges, so that they do not attract seeds to their rim.
  if excluded is not None:
    is_edge[excluded] = True
  dt = ndimage.distance_transform_edt(1 - is_edge.astype(np.uint8)).astype(np.float32)
  noisy = dt + _reproducible_noise(dt.shape) * _NOISE_SCALE
  return skimage.feature.peak_local_max(
      noisy, min_distance=min_distance, threshold_abs=threshold_abs,
      threshold_rel=0)


def _lexsorted(coords: np.ndarray, descending: bool = False) -> np.ndarray:
  """Rows of `coords` in lexicographic (z, y, x) order."""
  coords = np.asarray(coords, dtype=np.int64).reshape(-1, 3)
  order = np.lexsort(coords.T[::-1])
  if descending:
    order = order[::-1]
  return coords[order]


def _restrictor_mask(canvas):
  restrictor = getattr(canvas, 'restrictor', None)
  return None if restrictor is None else restrictor.mask


class PolicyPeaks(BaseSeedPolicy):
  """Points far from image edges: EDT peaks of non-edge voxels, in zyx order."""

  def init_coords(self) -> None:
    logging.info('peaks: starting')
    coords = _edge_distance_peaks(np.asarray(self.canvas.image),
                                  _restrictor_mask(self.canvas),
                                  min_distance=3, threshold_abs=0)
    self.coords = _lexsorted(coords)
    logging.info('peaks: found %d local maxima', len(self.coords))


class PolicyPeaks2d(BaseSeedPolicy):
  """PolicyPeaks applied to each z slice separately."""

  def __init__(self, canvas, min_distance: int = 7, threshold_abs: float = 2.5,
               sort_cmp: str = 'ascending', **kwargs):
    super().__init__(canvas, **kwargs)
    self.min_distance = int(min_distance)
    self.threshold_abs = float(threshold_abs)
    self.descending = sort_cmp.strip().lower().startswith('de')

  def init_coords(self) -> None:
    image = np.asarray(self.canvas.image)
    mask = _restrictor_mask(self.canvas)
    found = []
    for z in range(image.shape[0]):
      yx = _edge_distance_peaks(image[z], None if mask is None else mask[z],
                                self.min_distance, self.threshold_abs)
      found.append(np.concatenate(
          [np.full((len(yx), 1), z, dtype=np.int64), yx.astype(np.int64)], axis=1))
    coords = np.concatenate(found) if found else np.zeros((0, 3), np.int64)
    self.coords = _lexsorted(coords, descending=self.descending)
    logging.info('2d peaks: found %d local maxima', len(self.coords))


class PolicyMax(BaseSeedPolicy):
  """Every voxel, brightest first."""

  def init_coords(self) -> None:
    image = np.asarray(self.canvas.image)
    # Descending order of the flat index among equal values, as reversing an
    # ascending argsort gives.
    order = np.argsort(image, axis=None, kind='stable')[::-1]
    self.coords = np.stack(np.unravel_index(order, image.shape), axis=1)


class _GridPolicy(BaseSeedPolicy):
  """Grid points of spacing `step`, for each offset in turn; subclasses choose the axes."""

  def __init__(self, canvas, step: int, offsets, **kwargs):
    super().__init__(canvas, **kwargs)
    self.step = int(step)
    self.offsets = tuple(int(o) for o in offsets)

  def _axes(self, offset: int, shape) -> list[np.ndarray]:
    """The z, y and x coordinates of the grid for one offset."""
    raise NotImplementedError

  def init_coords(self) -> None:
    shape = self.canvas.image.shape[:3]
    grids = [np.stack(np.meshgrid(*self._axes(o, shape), indexing='ij'), -1).reshape(-1, 3)
             for o in self.offsets]
    self.coords = np.concatenate(grids) if grids else np.zeros((0, 3), np.int64)


class PolicyGrid3d(_GridPolicy):
  """Points of a 3-D grid of spacing `step`, for each offset in turn."""

  def __init__(self, canvas, step: int = 16,
               offsets=(0, 8, 4, 12, 2, 10, 14), **kwargs):
    super().__init__(canvas, step, offsets, **kwargs)

  def _axes(self, offset: int, shape) -> list[np.ndarray]:
    return [np.arange(offset, n, self.step) for n in shape]


class PolicyGrid2d(_GridPolicy):
  """Every z slice, with yx on a grid of spacing `step`, for each offset in turn."""

  def __init__(self, canvas, step: int = 16,
               offsets=(0, 8, 4, 12, 2, 6, 10, 14), **kwargs):
    super().__init__(canvas, step, offsets, **kwargs)

  def _axes(self, offset: int, shape) -> list[np.ndarray]:
    return [np.arange(shape[0]), np.arange(offset, shape[1], self.step),
            np.arange(offset, shape[2], self.step)]


class PolicyInvertOrigins(BaseSeedPolicy):
  """The seeds of a previous run, newest segment first."""

  def __init__(self, canvas, corner=None, segmentation_dir=None, **kwargs):
    super().__init__(canvas, **kwargs)
    if segmentation_dir is None:
      raise ValueError('PolicyInvertOrigins needs seed_policy_args '
                       '{"segmentation_dir": ...}')
    self.corner = corner
    self.segmentation_dir = segmentation_dir

  def init_coords(self) -> None:
    origins = results.load_origins(self.segmentation_dir, self.corner)
    ids = sorted(origins, reverse=True)
    self.coords = np.array([origins[i].start_zyx for i in ids],
                           dtype=np.int64).reshape(-1, 3)
