"""The seed policy base class and the helpers its subclasses share."""

from __future__ import annotations

import weakref
from typing import Any, Mapping, Optional

import numpy as np
import skimage.feature

from ffn.utils import checks
from ffn.utils import errors
from ffn.utils import resolve

_NOISE_SEED = 42
_NOISE_SCALE = 1e-4


class BaseSeedPolicy:
  """Iterates over `coords` (computed on first use), skipping the canvas border.

  A policy is built as `cls(canvas, corner=..., subvol_size=..., **args)`: the
  Runner adds the subvolume's corner and size, the request's
  `seed_policy_args` give `args`, which `check_arguments` checks before any
  work. A subclass takes its own arguments by name and passes `**kwargs` on.
  """

  # The keyword arguments the Runner gives every policy, used or not.
  RUNNER_ARGUMENTS = ('corner', 'subvol_size')
  # Allowed values of numeric arguments (each element, for lists).
  ARGUMENT_RANGES: Mapping[str, checks.Range] = {}

  @classmethod
  def check_arguments(cls, kwargs: Mapping[str, Any], field: str,
                      from_runner: bool = True) -> None:
    """Raises FFNError unless the policy takes `kwargs` (plus the Runner's, `from_runner`)."""
    supplied = cls.RUNNER_ARGUMENTS if from_runner else ()
    for name in set(kwargs) & set(supplied):
      raise errors.FFNError(f'{field} sets {name!r}, which the runner sets itself (the '
                            'subvolume being segmented); remove it')
    resolve.check_keywords(cls, kwargs, field, supplied, stop_at=BaseSeedPolicy)

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
      if self.coords is None:  # Nothing to seed (e.g. the image is all edges).
        self.coords = np.zeros((0, 3), np.int64)
    low = tuple(int(m) for m in self.canvas.margin)
    high = tuple(int(s) - m for s, m in zip(self.canvas.shape, low))
    while self.idx < len(self.coords):
      pos = tuple(int(v) for v in self.coords[self.idx])
      self.idx += 1
      # Cheap early rejection of positions without full image context.
      if all(a <= p < b for p, a, b in zip(pos, low, high)):
        return pos
    raise StopIteration()

  def id_at(self, pos: tuple[int, int, int]) -> Optional[int]:
    """The object id the user gave for a seed at zyx `pos`; None: the next free id.

    A function of the position alone, so that a run restored from a checkpoint
    gives the ids an uninterrupted one does.
    """
    del pos
    return None

  def get_state(self, previous: bool = False):
    """(coords, idx); with `previous`, idx points back at the last yielded seed."""
    idx = max(0, self.idx - 1) if previous else self.idx
    return self.coords, idx

  def set_state(self, state) -> None:
    coords, idx = state
    self.coords = None if coords is None else np.asarray(coords)
    self.idx = int(idx)

  def get_exclusion_mask(self) -> np.ndarray:
    """Voxels where no seed can start: segmented, or in the restrictor's (seed) masks."""
    excluded = np.asarray(self.canvas.segmentation) > 0
    for mask in restrictor_masks(self.canvas):
      excluded |= mask
    return excluded


def seeds_fixed_up_front(cls: type) -> bool:
  """Whether policy `cls` yields the coords it lists on first use (not seeds chosen on the fly)."""
  return issubclass(cls, BaseSeedPolicy) and cls.__next__ is BaseSeedPolicy.__next__


def seeds_done(policy) -> Optional[tuple[int, int]]:
  """(seeds taken, seeds listed) of a policy that lists its seeds up front, once listed; else None."""
  if not seeds_fixed_up_front(type(policy)) or policy.coords is None:
    return None
  return int(policy.idx), len(policy.coords)


def _reproducible_noise(shape) -> np.ndarray:
  """U[0, 1) noise from numpy's legacy MT19937 seeded with 42 (upstream's stream)."""
  return np.random.RandomState(_NOISE_SEED).random_sample(shape)


def find_peaks(values: np.ndarray, **kwargs) -> np.ndarray:
  """skimage's peak_local_max of `values` plus tiny fixed noise, which breaks ties reproducibly."""
  noisy = values + _reproducible_noise(values.shape) * _NOISE_SCALE
  return skimage.feature.peak_local_max(noisy, **kwargs)


def lexsorted(coords: np.ndarray, descending: bool = False) -> np.ndarray:
  """Rows of `coords` in lexicographic (z, y, x) order."""
  coords = np.asarray(coords, dtype=np.int64).reshape(-1, 3)
  order = np.lexsort(coords.T[::-1])
  if descending:
    order = order[::-1]
  return coords[order]


def restrictor_masks(canvas) -> list[np.ndarray]:
  """The restrictor's movement and seed masks that are set."""
  restrictor = getattr(canvas, 'restrictor', None)
  if restrictor is None:
    return []
  return [m for m in (restrictor.mask, restrictor.seed_mask) if m is not None]


def voxel_size(canvas) -> tuple[float, float, float]:
  """The canvas's zyx voxel size (isotropic when it has none)."""
  return tuple(float(v) for v in getattr(canvas, 'voxel_size_zyx', (1, 1, 1)))
