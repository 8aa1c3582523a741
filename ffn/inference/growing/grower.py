"""Growing one object from one seed: the FFN's field of view moved by a movement policy.

The grower owns an object map (logits; NaN where the network never
predicted), a movement policy and an executor client, and grows one object at
a time into that map. It never writes the segmentation, and reads it only
through the `is_free(pos)` callable it is given: a position that callable
calls taken is no place for the FOV. That is the one way a segmentation
steers an object; growing several objects at once (`pool`) is exact because
of it. Policies ask the grower (`is_valid_pos`), never anything else.

All positions and arrays are zyx.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional

import numpy as np

from ffn.inference.engines.executor import ExecutorClient
from ffn.inference.inference_utils import Counters
from ffn.inference.inference_utils import timer_counter
from ffn.inference.policies import movement
from ffn.utils import errors
from ffn.utils import probability
from ffn.utils.axes import Position
from ffn.utils.axes import zyx

# Upper bound on repeated predictions at one FOV (consistency_threshold > 0).
MAX_SELF_CONSISTENT_ITERS = 32
# Logit of 0.5: below it a voxel has been predicted as background.
_BACKGROUND_LOGIT = np.float32(0.0)
_STRONG_LOGIT = np.float32(probability.logit(0.8))


@dataclasses.dataclass
class GrownObject:
  """An object grown from `pos`: the box of the object map its FOVs could change."""
  pos: Position
  num_iters: int
  seconds: float
  box: tuple[slice, ...]
  object_map_box: np.ndarray  # The object map (logits) within `box`.
  min_pos: Position  # The extreme FOV centres.
  max_pos: Position
  history: list


@dataclasses.dataclass
class GrowthProgress:
  """An object part-grown, as a checkpoint keeps it (the object map aside)."""
  num_iters: int
  movement_policy_state: Any
  history: list
  history_deleted: list
  min_pos: Optional[Position]  # None: not recorded (2019 checkpoints).
  max_pos: Optional[Position]


# Called after every FOV with the grower, the FOV's position and the FOVs run so far.
AfterFov = Callable[['ObjectGrower', Position, int], None]


class ObjectGrower:
  """Grows objects one at a time from seeds into its own object map (see module doc)."""

  def __init__(self, model_info, client: ExecutorClient, image: np.ndarray, options,
               is_free: Callable[[Position], bool], counters: Optional[Counters] = None,
               restrictor: Optional[movement.MovementRestrictor] = None,
               movement_policy_fn: Optional[Callable[[Any], Any]] = None,
               keep_history: bool = False):
    """A grower over the normalised float32 `image`.

    `model_info` gives the xyz geometry (`input_image_size`, `input_seed_size`,
    `pred_mask_size`, `deltas`); `options` is a `plan.CanvasOptions`
    (thresholds as float32 logits). `movement_policy_fn(grower)` builds the
    movement policy (default: FaceMaxMovementPolicy with the model's deltas).
    """
    self.model_info = model_info
    self.client = client
    self.image = image
    self.shape = tuple(image.shape)
    self.options = options
    self.is_free = is_free
    self.counters = counters if counters is not None else Counters()
    self.restrictor = restrictor if restrictor is not None else movement.MovementRestrictor()
    self.keep_history = keep_history

    pred_size = zyx(model_info.pred_mask_size)
    seed_size = zyx(model_info.input_seed_size)
    image_size = zyx(model_info.input_image_size)
    self.margin = image_size // 2
    pred_delta = (seed_size - pred_size) // 2
    if np.any(pred_delta < 0):
      raise errors.FFNError(f'the model predicts {tuple(model_info.pred_mask_size)} (xyz), more '
                            f'than its seed input {tuple(model_info.input_seed_size)}')
    # Plain-int copies for the per-FOV path, where numpy on 3-vectors costs more than
    # the arithmetic.
    self._margin_t = tuple(int(m) for m in self.margin)
    self._high_t = tuple(int(s - m) for s, m in zip(self.shape, self.margin))
    self._seed_half_t = tuple(int(s) // 2 for s in seed_size)
    self._seed_size_t = tuple(int(s) for s in seed_size)
    self._image_size_t = tuple(int(s) for s in image_size)
    self._pred_offset_t = tuple(int(h - d) for h, d in zip(self._seed_half_t, pred_delta))
    self._pred_size_t = tuple(int(s) for s in pred_size)
    self._pred_half = pred_size // 2

    self.object_map = np.full(self.shape, np.nan, dtype=np.float32)
    # The box (start, end) outside which `object_map` is all NaN; None: all NaN.
    self._extent: Optional[tuple[list[int], list[int]]] = None
    self.history: list = []
    self.history_deleted: list = []
    self._min_pos: Position = (0, 0, 0)
    self._max_pos: Position = (0, 0, 0)
    if movement_policy_fn is None:
      movement_policy_fn = lambda grower: movement.FaceMaxMovementPolicy(
          grower, deltas=tuple(int(d) for d in zyx(model_info.deltas)),
          score_threshold=float(options.move_threshold))
    self.movement_policy = movement_policy_fn(self)
    self.movement_policy.reset_state((0, 0, 0))

  @property
  def seed(self) -> np.ndarray:
    """The object map under upstream's name (movement policies written for upstream read it)."""
    return self.object_map

  # -- where the FOV may go -------------------------------------------------------

  def in_bounds(self, pos: Position) -> bool:
    """Whether the FOV centred at `pos` lies within the image."""
    return all(low <= p < high for p, low, high in zip(pos, self._margin_t, self._high_t))

  def is_valid_pos(self, pos: Position, ignore_move_threshold: bool = False) -> bool:
    """Whether the FOV may be placed at `pos`: object map above threshold, inside, free."""
    if not ignore_move_threshold and self.object_map[pos] < self.options.move_threshold:
      self.counters['skip_threshold'].Increment()
      return False
    if not self.in_bounds(pos):
      self.counters['skip_invalid_pos'].Increment()
      return False
    if not self.is_free(pos):
      self.counters['skip_invalid_pos'].Increment()
      return False
    return True

  # -- one FOV ----------------------------------------------------------------

  def predict(self, pos: Position, logit_seed: np.ndarray) -> np.ndarray:
    """Runs the network with its FOV centred at `pos`; returns zyx logits."""
    with timer_counter(self.counters, 'predict'):
      image = self.image[tuple(slice(p - m, p - m + n) for p, m, n in
                               zip(pos, self._margin_t, self._image_size_t))]
      with timer_counter(self.counters, 'inference'):
        return self.client.predict(logit_seed, image)

  def update_at(self, pos: Position) -> np.ndarray:
    """Predicts at `pos`, writes the result into the object map and returns it (logits)."""
    with timer_counter(self.counters, 'update_at'):
      logit_seed = self.object_map[tuple(slice(p - h, p - h + n) for p, h, n in
                                         zip(pos, self._seed_half_t, self._seed_size_t))].copy()
      # Unexplored voxels are fed as pad_value; the map keeps them NaN.
      np.copyto(logit_seed, self.options.pad_value, where=np.isnan(logit_seed))

      logits = self.predict(pos, logit_seed)
      threshold = self.options.consistency_threshold
      if threshold > 0:
        prob_prev = probability.expit(logit_seed)
        for _ in range(MAX_SELF_CONSISTENT_ITERS - 1):
          prob = probability.expit(logits)
          if np.mean(np.abs(prob_prev - prob)) < threshold:
            break
          prob_prev = prob
          logits = self.predict(pos, logits)

      start = [p - o for p, o in zip(pos, self._pred_offset_t)]
      end = [p + n for p, n in zip(start, self._pred_size_t)]
      sel = tuple(slice(a, b) for a, b in zip(start, end))
      if self.options.disco_seed_threshold >= 0:
        self._freeze_background(sel, logits)
      self.object_map[sel] = logits
      self._extend(start, end)
    return logits

  def _extend(self, start, end) -> None:
    """Grows the box outside which the object map is known to be NaN to include start..end."""
    if self._extent is None:
      self._extent = (list(start), list(end))
    else:
      low, high = self._extent
      self._extent = ([min(a, b) for a, b in zip(low, start)],
                      [max(a, b) for a, b in zip(high, end)])

  def _freeze_background(self, sel, logits: np.ndarray) -> None:
    """Keeps voxels once predicted as background from being re-activated."""
    old = self.object_map[sel]
    if self.keep_history:
      self.history_deleted.append(
          int(np.sum((old >= _STRONG_LOGIT) & (logits < _BACKGROUND_LOGIT))))
    # count/size is the float64 mean np.mean would give, without the float copy.
    active = np.count_nonzero(logits >= self.options.move_threshold) / logits.size
    if active > self.options.disco_seed_threshold:
      # NaN (never predicted) compares false, so those voxels are never frozen.
      with np.errstate(invalid='ignore'):
        frozen = (old < _BACKGROUND_LOGIT) & (logits > old)
      # np.where and a copy back: a third of the time of a masked copyto.
      logits[...] = np.where(frozen, old, logits)

  # -- the object map ----------------------------------------------------------

  def start_object_map(self, pos: Position) -> None:
    """Clears the object map and places the initial activation at `pos`.

    Only the box this grower wrote into since the last clearing is cleared (the
    whole map after `restore`); code that writes the map itself calls `clear`.
    """
    if self._extent is not None:
      low, high = self._extent
      self.object_map[tuple(slice(a, b) for a, b in zip(low, high))] = np.nan
    self.object_map[pos] = self.options.init_activation
    self._extent = ([int(p) for p in pos], [int(p) + 1 for p in pos])

  def clear(self) -> None:
    """Sets the whole object map to NaN (never predicted)."""
    self.object_map.fill(np.nan)
    self._extent = None

  # -- one object ---------------------------------------------------------------

  def grow(self, start_pos: Position, resume: Optional[GrowthProgress] = None,
           reset_object_map: bool = True, stop: Optional[Callable[[], bool]] = None,
           after_fov: Optional[AfterFov] = None) -> int:
    """Grows the object of `start_pos`; returns the number of FOVs run for it.

    `resume` continues an object from a checkpoint (its object map and policy
    restored). `stop()` true ends the growth at the next FOV; `after_fov` is
    called after every FOV (progress, pictures, checkpoints).
    """
    start_pos = tuple(int(v) for v in start_pos)
    if resume is None:
      if reset_object_map:
        self.start_object_map(start_pos)
      self._reset(start_pos)
      if not len(self.movement_policy):
        self.movement_policy.append((self.movement_policy.score_threshold * 2, start_pos))
    num_iters = 0 if resume is None else int(resume.num_iters)
    with timer_counter(self.counters, 'segment_at-loop'):
      for pos in self.movement_policy:
        if stop is not None and stop():
          break
        if self.object_map[start_pos] < self.options.move_threshold:
          self.counters['seed_got_too_weak'].Increment()
          break
        if not self.restrictor.is_valid_pos(pos):
          self.counters['skip_restriced_pos'].Increment()
          continue
        pred = self.update_at(pos)
        self._min_pos = tuple(map(min, self._min_pos, pos))
        self._max_pos = tuple(map(max, self._max_pos, pos))
        num_iters += 1
        with timer_counter(self.counters, 'movement_policy'):
          self.movement_policy.update(pred, pos)
        if self.keep_history:
          self.history.append(pos)
        if after_fov is not None:
          after_fov(self, pos, num_iters)
    return num_iters

  def _reset(self, start_pos: Position) -> None:
    """Prepares the movement policy and extents for a new object at `start_pos`."""
    self.movement_policy.reset_state(start_pos)
    self.history = []
    self.history_deleted = []
    self._min_pos = self._max_pos = tuple(int(p) for p in start_pos)

  def grown(self, pos: Position, num_iters: int, seconds: float,
            copy: bool = False) -> GrownObject:
    """The object just grown from `pos` (its object map box a copy with `copy`)."""
    # Only the box the FOV visited can have changed.
    box = tuple(slice(max(int(s), 0), int(e) + 1) for s, e in
                zip(np.subtract(self._min_pos, self._pred_half),
                    np.add(self._max_pos, self._pred_half)))
    part = self.object_map[box]
    return GrownObject(pos=pos, num_iters=num_iters, seconds=seconds, box=box,
                       object_map_box=part.copy() if copy else part,
                       min_pos=tuple(self._min_pos), max_pos=tuple(self._max_pos),
                       history=list(self.history))

  def grow_object(self, pos: Position, stop: Optional[Callable[[], bool]] = None,
                  after_fov: Optional[AfterFov] = None) -> GrownObject:
    """Grows the object of `pos` and returns it (its object map box a copy)."""
    start = time.time()
    num_iters = self.grow(pos, stop=stop, after_fov=after_fov)
    return self.grown(pos, num_iters, time.time() - start, copy=True)

  # -- checkpoints ---------------------------------------------------------------

  def progress(self, num_iters: int) -> GrowthProgress:
    """The object in flight after `num_iters` FOVs, for a checkpoint."""
    return GrowthProgress(num_iters=num_iters,
                          movement_policy_state=self.movement_policy.get_state(),
                          history=list(self.history), history_deleted=list(self.history_deleted),
                          min_pos=tuple(self._min_pos), max_pos=tuple(self._max_pos))

  def restore(self, object_map: np.ndarray, progress: GrowthProgress) -> None:
    """Takes over a checkpointed object map and the state of the object in it.

    ValueError (from the movement policy) for a policy state it cannot take.
    """
    self.movement_policy.restore_state(progress.movement_policy_state)
    self.object_map[:] = object_map
    # The restored map may hold values anywhere.
    self._extent = ([0, 0, 0], list(self.shape))
    self.history = list(progress.history)
    self.history_deleted = list(progress.history_deleted)
    if progress.min_pos is not None:  # 2019 checkpoints did not keep the extents.
      self._min_pos, self._max_pos = tuple(progress.min_pos), tuple(progress.max_pos)
