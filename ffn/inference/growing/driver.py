"""Objects from seeds: each seed checked, its object grown and added to the state, in seed order.

The driver owns the rules that turn grown objects into segments (a seed must
be free and away from segments; an object must be strong at its seed and add
at least `min_segment_size` new voxels; segments never overwrite segments)
and the points where a checkpoint is consistent: a seed taken but not yet
grown, an object in flight after each FOV, an object just added. It grows one
object at a time with one grower (`run`); `pool` grows several at once over
the same `take` and `add` steps.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable, Iterator, Optional, Protocol

import numpy as np

from ffn.inference.growing.grower import AfterFov
from ffn.inference.growing.grower import GrownObject
from ffn.inference.growing.grower import GrowthProgress
from ffn.inference.growing.grower import ObjectGrower
from ffn.inference.growing.state import SubvolumeState
from ffn.inference.inference_utils import Counters
from ffn.inference.inference_utils import TimedIter
from ffn.inference.io.probmaps import quantize_probability
from ffn.inference.io.results import OriginInfo
from ffn.inference.policies import movement
from ffn.utils import errors
from ffn.utils import probability
from ffn.utils.axes import Position

MSEC_IN_SEC = 1000


@dataclasses.dataclass(frozen=True)
class Seed:
  """A seed from the policy, with the policy's state at it and just after it."""
  pos: Position
  at: Any  # A restart from here redoes this seed.
  after: Any  # A restart from here goes on with the next one.
  segment_id: Optional[int] = None  # The id the user asked for (seed_points); None: the next.


class Checkpoints(Protocol):
  """Where the driver reports each point at which its progress may be saved."""

  def reached(self, seed_state: Any,
              in_flight: Optional[tuple[ObjectGrower, int]] = None) -> None:
    """A consistent point: the seed policy's state, and the object in flight (grower, FOVs)."""


class Checkpointer:
  """Saves progress every `interval_sec` (0: never), and at once when `stop_requested()`.

  `save(seed_state, in_flight)` writes the checkpoint; after a stop it raises
  errors.Interrupted, so the run ends there and resumes from the file.
  """

  def __init__(self, path: str, interval_sec: float,
               save: Callable[[Any, Optional[tuple[ObjectGrower, int]]], None],
               stop_requested: Callable[[], bool] = lambda: False):
    self.path = path
    self.interval_sec = float(interval_sec)
    self._save = save
    self._stop_requested = stop_requested
    self.last = time.time()

  def reached(self, seed_state: Any,
              in_flight: Optional[tuple[ObjectGrower, int]] = None) -> None:
    if self._stop_requested():
      self._save(seed_state, in_flight)
      raise errors.Interrupted(f'progress saved to {self.path}')
    if self.interval_sec <= 0 or time.time() - self.last < self.interval_sec:
      return
    self._save(seed_state, in_flight)
    self.last = time.time()


def policy_seeds(policy, counters: Counters) -> Iterator[Seed]:
  """The seeds of a seed policy, each with the policy's state at it and after it."""
  for pos in TimedIter(policy, counters, 'seed-policy'):
    pos = tuple(int(p) for p in pos)
    yield Seed(pos, policy.get_state(previous=True), policy.get_state(), policy.id_at(pos))


class SeedDriver:
  """Takes seeds, grows their objects and adds them to `state` (see module doc)."""

  def __init__(self, state: SubvolumeState, options, counters: Counters,
               in_bounds: Callable[[Position], bool],
               restrictor: Optional[movement.MovementRestrictor] = None,
               checkpoints: Optional[Checkpoints] = None, name: str = ''):
    self.state = state
    self.options = options
    self.counters = counters
    self.in_bounds = in_bounds
    self.restrictor = restrictor if restrictor is not None else movement.MovementRestrictor()
    self.checkpoints = checkpoints
    self._name = name

  def _log(self, msg: str, *args) -> None:
    logging.info('[%s] ' + msg, self._name, *args)

  def _checkpoint(self, seed_state: Any, in_flight=None) -> None:
    if self.checkpoints is not None:
      self.checkpoints.reached(seed_state, in_flight)

  # -- seeds --------------------------------------------------------------------

  def _restrictor_allows(self, pos: Position) -> bool:
    return self.restrictor.is_valid_pos(pos) and self.restrictor.is_valid_seed(pos)

  def _near_segment(self, pos: Position) -> bool:
    """Whether a segment lies within min_boundary_dist of `pos` (no seed starts there)."""
    near = tuple(slice(max(p - int(d), 0), p + int(d) + 1)
                 for p, d in zip(pos, self.options.min_boundary_dist))
    return bool(np.any(self.state.segmentation[near] > 0))

  def may_start(self, pos: Position) -> bool:
    """Whether an object may be grown from `pos` given the segmentation now (no side effects)."""
    return (self.in_bounds(pos) and self.state.is_free(pos) and self._restrictor_allows(pos)
            and not self._near_segment(pos))

  def take(self, seed: Seed, resumed: bool = False) -> bool:
    """Whether an object is grown from `seed` now (a seed too near a segment is marked -1).

    A `resumed` seed is the one of an object in flight at a checkpoint.
    """
    pos = seed.pos
    if not (self.in_bounds(pos) and self.state.is_free(pos)):
      self.counters['skip_invalid_pos'].Increment()
      return False
    if not self._restrictor_allows(pos):
      return False
    if not resumed:
      # The seed is not processed yet: a restart must redo it.
      self._checkpoint(seed.at)
      if self._near_segment(pos):
        self.state.segmentation[pos] = -1
        return False
    return True

  # -- objects ------------------------------------------------------------------

  def grow_and_add(self, grower: ObjectGrower, seed: Seed,
                   resume: Optional[GrowthProgress] = None,
                   after_fov: Optional[AfterFov] = None) -> None:
    """Grows the object of `seed` with `grower` and adds it (checkpoints after every FOV)."""
    self._log('Starting segmentation at %r (zyx)', seed.pos)
    start = time.time()

    def each_fov(g: ObjectGrower, pos: Position, num_iters: int) -> None:
      if after_fov is not None:
        after_fov(g, pos, num_iters)
      self._checkpoint(seed.at, (g, num_iters))

    num_iters = grower.grow(seed.pos, resume=resume, after_fov=each_fov)
    self.add(grower.grown(seed.pos, num_iters, time.time() - start), seed)

  def add(self, obj: GrownObject, seed: Seed) -> None:
    """Adds a grown object as a segment if it qualifies (else marks its seed as failed)."""
    state, options, counters = self.state, self.options, self.counters
    pos, seconds = obj.pos, obj.seconds
    counters['fovs-of-objects'].IncrementBy(obj.num_iters)
    if obj.num_iters <= 0:
      counters['invalid-other-time-ms'].IncrementBy(seconds * MSEC_IN_SEC)
      self._log('Failed: num iters was %d', obj.num_iters)
      return
    local_pos = tuple(p - b.start for p, b in zip(pos, obj.box))
    if obj.object_map_box[local_pos] < options.move_threshold:
      if state.segmentation[pos] == 0:
        state.segmentation[pos] = -1
      self._log('Failed: weak seed')
      counters['invalid-weak-time-ms'].IncrementBy(seconds * MSEC_IN_SEC)
      return

    seg_view = state.segmentation[obj.box]
    object_view = obj.object_map_box
    mask = object_view >= options.segment_threshold
    raw_voxels = int(np.sum(mask))
    overlapped_ids, overlap_counts = np.unique(seg_view[mask], return_counts=True)
    keep = overlapped_ids > 0
    overlapped_ids, overlap_counts = overlapped_ids[keep], overlap_counts[keep]
    # New segments never overwrite existing ones (but do replace -1 markers).
    mask &= seg_view <= 0
    new_voxels = int(np.sum(mask))
    if new_voxels < options.min_segment_size:
      if state.segmentation[pos] == 0:
        state.segmentation[pos] = -1
      self._log('Failed: too small: %d', new_voxels)
      counters['invalid-small-time-ms'].IncrementBy(seconds * MSEC_IN_SEC)
      return

    counters['voxels-segmented'].IncrementBy(new_voxels)
    counters['voxels-overlapping'].IncrementBy(raw_voxels - new_voxels)
    sid = self._segment_id(seed)
    seg_view[mask] = sid
    if state.seg_prob is not None:
      state.seg_prob[obj.box][mask] = quantize_probability(
          probability.expit(object_view[mask]))
    state.overlaps[sid] = np.array([overlapped_ids, overlap_counts])
    state.origins[sid] = OriginInfo(tuple(int(v) for v in pos), obj.num_iters, seconds)
    counters['valid-time-ms'].IncrementBy(seconds * MSEC_IN_SEC)
    counters['segments-created'].Increment()
    self._log('Created supervoxel:%d  seed(zyx):%s  size:%d  iters:%d',
              sid, pos, new_voxels, obj.num_iters)
    self._checkpoint(seed.after)

  def _segment_id(self, seed: Seed) -> int:
    """The id the seed asks for if no segment has it, else the next free one."""
    wanted = seed.segment_id
    if wanted is None:
      return self.state.next_segment_id()
    if wanted in self.state.origins or np.any(self.state.segmentation == wanted):
      sid = self.state.next_segment_id()
      self._log('Id %d of the seed at %r (zyx) is taken; its object gets %d', wanted, seed.pos, sid)
      return sid
    return wanted

  # -- the whole subvolume -------------------------------------------------------

  def resume(self, seeds: Iterator[Seed], grower: ObjectGrower,
             progress: GrowthProgress, after_fov: Optional[AfterFov] = None) -> None:
    """Finishes the object in flight at a checkpoint: the seeds start at its seed."""
    seed = next(seeds, None)
    if seed is not None and self.take(seed, resumed=True):
      self.grow_and_add(grower, seed, resume=progress, after_fov=after_fov)

  def run(self, seeds: Iterator[Seed], grower: ObjectGrower,
          after_fov: Optional[AfterFov] = None) -> None:
    """Grows and adds the object of every seed, one at a time."""
    # Timed by the caller (Canvas.segment_all), which covers the other ways of growing too.
    for seed in seeds:
      if self.take(seed):
        self.grow_and_add(grower, seed, after_fov=after_fov)
