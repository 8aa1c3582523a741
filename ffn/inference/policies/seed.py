"""Where objects start: seed policies yielding zyx positions inside a canvas.

A policy is built with the canvas and keyword arguments (the Runner passes
`corner`, `subvol_size` and the JSON `seed_policy_args`) and iterated for
seed positions. Its `(coords, idx)` state can be saved and restored.
The base class lives in `seed_base`, the policies on image intensity in
`seed_intensity` and the user's points in `seed_points`; all are attributes
of this module, where policies are looked up by name.
"""

from __future__ import annotations

import itertools
import logging
import sys
from typing import Any, Optional, Sequence

import numpy as np
from scipy import ndimage

from ffn.inference.io import results
from ffn.inference.policies import seed_points
from ffn.inference.policies.seed_base import BaseSeedPolicy
from ffn.inference.policies.seed_base import find_peaks
from ffn.inference.policies.seed_base import lexsorted
from ffn.inference.policies.seed_base import restrictor_masks
from ffn.inference.policies.seed_base import voxel_size
from ffn.utils import checks
from ffn.utils import errors
from ffn.utils import resolve
# Re-exported: every policy is an attribute of this module, as upstream's are.
from ffn.inference.policies.seed_intensity import PolicyDenseSeeds  # pylint: disable=unused-import
from ffn.inference.policies.seed_intensity import PolicyImagePeaks2DDisk  # pylint: disable=unused-import
from ffn.inference.policies.seed_intensity import PolicyImagePeaks3D2D  # pylint: disable=unused-import
from ffn.inference.policies.seed_intensity import PolicyMaxPeaks  # pylint: disable=unused-import
from ffn.inference.policies.seed_points import PolicyPoints  # pylint: disable=unused-import

_PEAKS_SIGMA = 49.0 / 6.0


def _adaptive_edges(image: np.ndarray) -> np.ndarray:
  """Sobel edges above their local (Gaussian-smoothed) level."""
  edges = ndimage.generic_gradient_magnitude(image.astype(np.float32), ndimage.sobel)
  local_level = np.zeros(edges.shape, dtype=np.float32)
  ndimage.gaussian_filter(edges, _PEAKS_SIGMA, output=local_level, mode='reflect')
  return edges > local_level


def _edge_distance_peaks(image: np.ndarray, excluded: np.ndarray | None,
                         min_distance: int, threshold_abs: float) -> np.ndarray:
  """Peaks of the distance to adaptively thresholded Sobel edges of `image`."""
  is_edge = _adaptive_edges(image)
  # Masked areas count as edges, so that they do not attract seeds to their rim.
  if excluded is not None:
    is_edge[excluded] = True
  dt = ndimage.distance_transform_edt(1 - is_edge.astype(np.uint8)).astype(np.float32)
  return find_peaks(dt, min_distance=min_distance, threshold_abs=threshold_abs,
                    threshold_rel=0)


def _restrictor_mask(canvas):
  restrictor = getattr(canvas, 'restrictor', None)
  return None if restrictor is None else restrictor.mask


class PolicyPeaks(BaseSeedPolicy):
  """Points far from image edges: EDT peaks of non-edge voxels, in zyx order.

  Masked voxels count as edges; segmented and masked voxels never hold a peak.
  The distance transform uses the canvas's `voxel_size_zyx`.
  """

  def init_coords(self) -> None:
    logging.info('peaks: starting')
    is_edge = _adaptive_edges(np.asarray(self.canvas.image))
    # Masked areas count as edges, so that they do not attract seeds to their rim.
    for mask in restrictor_masks(self.canvas):
      is_edge[mask] = True
    if np.all(is_edge):
      return
    excluded = self.get_exclusion_mask()
    dt = ndimage.distance_transform_edt(1 - is_edge.astype(np.uint8),
                                        sampling=voxel_size(self.canvas)).astype(np.float32)
    dt[excluded] = -1
    dt[~np.isfinite(dt)] = -1
    self.coords = lexsorted(find_peaks(dt, min_distance=3, threshold_abs=0, threshold_rel=0))
    logging.info('peaks: found %d local maxima', len(self.coords))


class PolicyPeaks2d(BaseSeedPolicy):
  """PolicyPeaks applied to each z slice separately."""

  ARGUMENT_RANGES = {'min_distance': checks.POSITIVE_INT, 'threshold_abs': checks.ANY}

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
    self.coords = lexsorted(coords, descending=self.descending)
    logging.info('2d peaks: found %d local maxima', len(self.coords))


class PolicyFillEmptySpace(BaseSeedPolicy):
  """Points deepest inside the unsegmented space, to fill what earlier passes left."""

  def init_coords(self) -> None:
    empty = np.asarray(self.canvas.segmentation) == 0
    dt = ndimage.distance_transform_edt(empty).astype(np.float32)
    # threshold_abs < 1 keeps peaks off segmented voxels (where dt is 0).
    self.coords = lexsorted(find_peaks(dt, min_distance=2, threshold_abs=0.5,
                                        threshold_rel=0))
    logging.info('fill_empty: found %d local maxima', len(self.coords))


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

  ARGUMENT_RANGES = {'step': checks.POSITIVE_INT, 'offsets': checks.NON_NEGATIVE_INT}

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

  def __init__(self, canvas, corner=None, segmentation_dir: str | None = None, **kwargs):
    super().__init__(canvas, **kwargs)
    if segmentation_dir is None:
      raise errors.FFNError('PolicyInvertOrigins needs seed_policy_args '
                       '{"segmentation_dir": ...}')
    self.corner = corner
    self.segmentation_dir = segmentation_dir

  @classmethod
  def check_arguments(cls, kwargs, field: str, from_runner: bool = True) -> None:
    super().check_arguments(kwargs, field, from_runner)
    if not kwargs.get('segmentation_dir'):
      raise errors.FFNError(f'{field} needs "segmentation_dir", the result directory of the '
                            'run whose seeds to take in reverse order')

  def init_coords(self) -> None:
    origins = results.load_origins(self.segmentation_dir, self.corner)
    ids = sorted(origins, reverse=True)
    self.coords = np.array([origins[i].start_zyx for i in ids],
                           dtype=np.int64).reshape(-1, 3)


def policy_class(name: str, field: str) -> type:
  """The seed policy `name` (of this module, or a dotted path); errors name `field`."""
  return resolve.resolve_class(name, sys.modules[__name__], BaseSeedPolicy, field)


class ReverseCoords(BaseSeedPolicy):
  """The seeds of policy `policy_to_reverse` (given the other arguments), last first."""

  def __init__(self, canvas, policy_to_reverse: str, **policy_kwargs):
    super().__init__(canvas)
    cls = policy_class(policy_to_reverse, 'ReverseCoords policy_to_reverse')
    self._policy = cls(canvas, **policy_kwargs)

  @classmethod
  def check_arguments(cls, kwargs, field: str, from_runner: bool = True) -> None:
    kwargs = dict(kwargs)
    name = kwargs.pop('policy_to_reverse', None)
    if not isinstance(name, str):
      raise errors.FFNError(f'{field} needs "policy_to_reverse", the name of a seed policy '
                            f'(got {errors.shown(name)})')
    policy_class(name, f'{field} policy_to_reverse').check_arguments(kwargs, field, from_runner)

  def init_coords(self) -> None:
    self.coords = np.array(list(self._policy), np.int64).reshape(-1, 3)[::-1]

  def id_at(self, pos) -> Optional[int]:
    return self._policy.id_at(pos)


def _holds_run(coords: np.ndarray, run: np.ndarray) -> bool:
  """Whether the rows of `run` appear in `coords` one after another, in order."""
  if len(run) == 0:
    return True
  return any(np.array_equal(coords[i:i + len(run)], run)
             for i in range(len(coords) - len(run) + 1))


class SequentialPolicies(BaseSeedPolicy):
  """The seeds of several policies one after the other: `policies` is [[name, kwargs], ...].

  The chain is computed when the first seed is asked for (after the canvas's
  initial segmentation is in place). Its progress is saved as the chain's
  (coords, idx), so that a restored run continues where it stopped (upstream
  saves the member states, which the chain has already used up). Members get
  the Runner's corner and subvolume size besides their own arguments (the
  points of `PolicyPoints` are global); a seed's id is the first member's.
  """

  def __init__(self, canvas, policies: Sequence[Sequence[Any]], **kwargs):
    super().__init__(canvas)
    runner_args = {k: v for k, v in kwargs.items() if k in self.RUNNER_ARGUMENTS}
    self._policies = []
    for entry in policies:
      if len(entry) != 2 or not isinstance(entry[1], dict):
        raise errors.FFNError(f'SequentialPolicies policies entry {entry!r} is not '
                         '[policy name, {keyword arguments}]')
      cls = policy_class(entry[0], 'SequentialPolicies policy')
      self._policies.append(cls(canvas, **entry[1], **runner_args))

  @classmethod
  def check_arguments(cls, kwargs, field: str, from_runner: bool = True) -> None:
    kwargs = dict(kwargs)
    policies = kwargs.pop('policies', None)
    if kwargs or not isinstance(policies, list):
      raise errors.FFNError(f'{field} must be {{"policies": [[name, {{arguments}}], ...]}}, '
                            f'got {errors.shown(dict(kwargs, policies=policies))}')
    for i, entry in enumerate(policies):
      where = f'{field} policies[{i}]'
      if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], dict)):
        raise errors.FFNError(f'{where} is {errors.shown(entry)}, expected [policy name, '
                              '{keyword arguments}]')
      policy_class(entry[0], where).check_arguments(entry[1], where, from_runner)

  def init_coords(self) -> None:
    self.coords = np.array(list(itertools.chain(*self._policies)), np.int64).reshape(-1, 3)

  def set_state(self, state) -> None:
    """Restores the chain's progress, refusing it where a member's fixed seeds changed since."""
    super().set_state(state)
    if self.coords is None:
      return
    coords = self.coords.reshape(-1, 3)
    for member in self._policies:
      if hasattr(member, 'seeds_zyx') and not _holds_run(coords, member.seeds_zyx()):
        raise seed_points.OtherPointsError()

  def id_at(self, pos) -> Optional[int]:
    return next((i for i in (p.id_at(pos) for p in self._policies) if i is not None), None)
