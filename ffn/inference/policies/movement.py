"""Where the FFN field of view goes next: movement policies and restrictors.

All positions, offsets and deltas in this module are zyx.
"""

from __future__ import annotations

import collections
import weakref
from typing import Any, Mapping, Sequence

import numpy as np

from ffn.utils import checks
from ffn.utils import resolve
from ffn.utils.axes import Position
from ffn.utils.axes import zyx
from ffn.utils.fov import get_scored_move_offsets


class BaseMovementPolicy:
  """A queue of candidate FOV positions fed by the predictions of the FFN.

  A policy is built as `cls(grower, deltas=..., score_threshold=..., **args)`:
  the plan gives the model's deltas (zyx) and the move threshold (a logit)
  unless the request's `movement_policy_args` (`args`) set them. The grower
  (`growing.grower.ObjectGrower`, reached as `self.canvas`, upstream's name)
  is the policy's only view of the subvolume: it decides whether the FOV may
  go to a position with `grower.is_valid_pos(pos)`, and reads the object map
  (`grower.object_map`, upstream's `seed`). A policy must never read a
  segmentation itself: objects grown at once are exact only because every
  read of the segmentation goes through the grower's `is_free`, which the
  pool records and checks.
  """

  # Allowed values of numeric arguments (each element, for lists).
  ARGUMENT_RANGES: Mapping[str, checks.Range] = {}

  @classmethod
  def check_arguments(cls, kwargs: Mapping[str, Any], field: str) -> None:
    """Raises FFNError unless the policy takes the keyword arguments `kwargs`."""
    resolve.check_keywords(cls, kwargs, field, supplied=('deltas', 'score_threshold'))

  def __init__(self, grower, scored_coords, deltas: Sequence[int]):
    # A proxy, so that the grower (which owns the policy) can be collected.
    self.canvas = weakref.proxy(grower) if grower is not None else None
    self.scored_coords = scored_coords
    self.deltas = np.asarray(deltas, dtype=np.int64)

  def __len__(self) -> int:
    return len(self.scored_coords)

  def __iter__(self):
    return self

  def __next__(self) -> Position:
    raise StopIteration()

  def append(self, item) -> None:
    """Queues a (score, zyx position) candidate."""
    self.scored_coords.append(item)

  def update(self, prob_map: np.ndarray, position: Position) -> None:
    """Takes note of the logits predicted by the FFN with its FOV at `position`."""
    raise NotImplementedError()

  def get_state(self) -> Any:
    """The state of the policy as a picklable object."""
    raise NotImplementedError()

  def restore_state(self, state: Any) -> None:
    """Restores a state returned by `get_state`; ValueError for a state it cannot take."""
    raise NotImplementedError()

  def reset_state(self, start_pos: Position) -> None:
    """Forgets everything and prepares to segment an object seeded at `start_pos`."""
    raise NotImplementedError()


class FaceMaxMovementPolicy(BaseMovementPolicy):
  """Breadth-first moves to the maxima of the prediction's cuboid faces."""

  ARGUMENT_RANGES = {'deltas': checks.NON_NEGATIVE_INT, 'score_threshold': checks.ANY}

  def __init__(self, grower, deltas: Sequence[int] = (4, 8, 8),
               score_threshold: float = 0.9):
    super().__init__(grower, collections.deque(), deltas)
    self.score_threshold = score_threshold
    self.done_rounded_coords: set[Position] = set()
    self._start_pos = (0, 0, 0)
    # Plain ints: quantize_pos runs several times per FOV.
    self._step = tuple(max(int(d), 1) for d in self.deltas)
    self._half_delta = tuple(int(d) // 2 for d in self.deltas)

  def reset_state(self, start_pos: Position) -> None:
    self.scored_coords = collections.deque()
    self.done_rounded_coords = set()
    self._start_pos = tuple(int(p) for p in start_pos)

  def get_state(self) -> list:
    return [(self.scored_coords, self.done_rounded_coords, self._start_pos)]

  def restore_state(self, state) -> None:
    try:
      entry = state[0]
      queue = collections.deque((float(score), _position(pos)) for score, pos in entry[0])
      done = set(_position(cell) for cell in entry[1])
      # 2019 checkpoints did not record the start position.
      start = _position(entry[2]) if len(entry) > 2 else self._start_pos
    except (TypeError, ValueError, IndexError, KeyError) as e:
      raise ValueError(f'{type(self).__name__} state is malformed ({type(e).__name__}: '
                       f'{e})') from None
    self.scored_coords, self.done_rounded_coords, self._start_pos = queue, done, start

  def quantize_pos(self, pos: Sequence[int]) -> Position:
    """The cell of `pos` on a grid of spacing `deltas` centred on the object's seed."""
    return tuple((int(p) - s + h) // step for p, s, h, step in
                 zip(pos, self._start_pos, self._half_delta, self._step))

  def __next__(self) -> Position:
    while self.scored_coords:
      _, coord = self.scored_coords.popleft()
      coord = tuple(int(c) for c in coord)
      if self.quantize_pos(coord) in self.done_rounded_coords:
        continue
      # The validity check reads the object map as it is now, not as it was when
      # the candidate was queued.
      if self.canvas.is_valid_pos(coord):
        return coord
    raise StopIteration()

  def update(self, prob_map: np.ndarray, position: Position) -> None:
    self.done_rounded_coords.add(self.quantize_pos(position))
    moves = sorted(get_scored_move_offsets(self.deltas, prob_map,
                                           threshold=self.score_threshold),
                   reverse=True)
    for score, offset in moves:
      self.scored_coords.append(
          (score, tuple(int(p + o) for p, o in zip(position, offset))))


def _position(value) -> Position:
  """A stored zyx position as a tuple of three ints; ValueError if it is not one."""
  position = tuple(int(v) for v in value)
  if len(position) != 3:
    raise ValueError(f'{value!r} is not a zyx position')
  return position


class MovementRestrictor:
  """Keeps the FOV (and seeds) out of masked or badly aligned areas."""

  def __init__(self, mask: np.ndarray | None = None,
               shift_mask: np.ndarray | None = None, shift_mask_fov=None,
               shift_mask_threshold: int = 4, shift_mask_scale: int = 1,
               seed_mask: np.ndarray | None = None):
    """`mask`/`seed_mask`: zyx booleans, true = excluded.

    `shift_mask`: (2, z, y, x) shift field at `shift_mask_scale` xy
    downsampling; FOVs whose `shift_mask_fov` (BoundingBox, xyz, relative to
    the position) contains a shift >= `shift_mask_threshold` are excluded.
    """
    self.mask = mask
    self.seed_mask = seed_mask
    self.shift_mask = None
    self._shift_mask_scale = int(shift_mask_scale)
    if shift_mask is not None:
      if shift_mask_fov is None:
        raise ValueError('shift_mask_fov is required with a shift_mask')
      self.shift_mask = np.max(np.abs(shift_mask), axis=0) >= shift_mask_threshold
      self._fov_low = zyx(shift_mask_fov.start)
      self._fov_high = zyx(shift_mask_fov.end) - 1

  def is_valid_seed(self, pos: Position) -> bool:
    """False if `pos` is excluded as a seed."""
    return not (self.seed_mask is not None and self.seed_mask[pos])

  def is_valid_pos(self, pos: Position) -> bool:
    """False if the FOV may not be placed at `pos`."""
    if self.mask is not None and self.mask[pos]:
      return False
    if self.shift_mask is not None:
      p = np.asarray(pos, dtype=np.int64)
      low = np.maximum(p + self._fov_low, 0)
      high = p + self._fov_high
      s = self._shift_mask_scale
      # z is not downsampled in the shift mask.
      window = self.shift_mask[low[0]:high[0] + 1,
                               low[1] // s:high[1] // s + 1,
                               low[2] // s:high[2] // s + 1]
      if np.any(window):
        return False
    return True
