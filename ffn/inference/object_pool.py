"""Growing several objects of one canvas at once, with the one-at-a-time result.

Growing an object reads the segmentation in one place only: a position already
segmented is no place for the FOV (`Canvas.is_valid_pos`). Worker canvases
("growers", `Canvas.object_grower`), each with its own object map and model
instance, grow the objects of the next seeds against the segmentation as it
is, and record every position they found unsegmented. Objects are added in
seed order, each after the seed checks one at a time would make at that
point; a grown object is kept if every position it found unsegmented still is.
The segmentation only grows, so then the objects added before it could not
have changed its course, and it is exactly the object one at a time would have
grown. Otherwise it is grown again, in order, by the canvas itself.

Why: one model call spread over all cores waits at every layer for the
slowest core, and on shared machines cores slow down independently; objects
grown side by side, each on its own cores, do not wait for each other.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import time
from typing import Any, Iterator, Optional

import numpy as np

from ffn.utils.axes import Position

# How many seeds are kept in hand beyond the one being added (bounds the work
# redone when a later object turns out to be covered by an earlier one), and
# how many grown objects may wait to be added (each holds its object map box).
_SEEDS_IN_HAND = 64
_GROWN_AHEAD_PER_GROWER = 4
# How often objects grown ahead are checked against the objects before them.
_PRUNE_EVERY_SEC = 0.05


@dataclasses.dataclass
class _Seed:
  """A seed taken from the policy, and the object a grower grows from it."""
  pos: Position
  policy_idx: int  # The seed policy's idx just after yielding `pos`.
  ruled_out: bool = False  # By the segmentation (for good: it only grows).
  grower: Any = None  # While growing.
  future: Optional[concurrent.futures.Future] = None

  def covers(self, pos: Position, threshold: float) -> bool:
    """Whether this seed's object, as grown so far, already holds `pos` (see _Pool.assign)."""
    if self.grower is not None:
      return bool(self.grower.seed[pos] >= threshold)
    if self.future is None or not self.future.done() or self.future.exception() is not None:
      return False
    obj = self.future.result()
    if obj is None or not all(b.start <= p < b.stop for p, b in zip(pos, obj.box)):
      return False
    return bool(obj.seed_box[tuple(p - b.start for p, b in zip(pos, obj.box))] >= threshold)


def _grow(grower, pos: Position):
  """The object `grower` grows from `pos` (None if abandoned)."""
  grower._free_queries = []  # pylint: disable=protected-access
  start = time.time()
  num_iters = grower.segment_at(pos)
  if grower.abandon:
    grower.counters['fovs-abandoned'].IncrementBy(num_iters)
    return None
  return grower.grown(pos, num_iters, time.time() - start, copy_seed=True)


def _any_segmented(segmentation: np.ndarray, positions) -> bool:
  """Whether any of the zyx `positions` (an (N, 3) array or list of triples) is segmented."""
  positions = np.asarray(positions, dtype=np.int64).reshape(-1, 3)
  return bool(np.any(segmentation[tuple(positions.T)] > 0))


def _steered_by_now(segmentation: np.ndarray, grower) -> bool:
  """Whether a position the grower found unsegmented is segmented now (it must be redone)."""
  queries = list(grower._free_queries or ())  # pylint: disable=protected-access
  return _any_segmented(segmentation, queries)


def still_valid(segmentation: np.ndarray, obj) -> bool:
  """Whether every position the object's growth found unsegmented still is."""
  return obj.free_queries is None or not _any_segmented(segmentation, obj.free_queries)


@contextlib.contextmanager
def _policy_at(policy, idx: int):
  """The seed policy rewound to `idx`: checkpoints name the seed being added, not the last taken."""
  current, policy.idx = policy.idx, idx
  try:
    yield
  finally:
    policy.idx = current


class _Pool:
  """The seeds in hand, in seed order, and the growers working on them."""

  def __init__(self, canvas, seeds: Iterator[Position], threads):
    self.canvas = canvas
    self.seeds = seeds
    self.threads = threads
    self.growers = [canvas.object_grower(e) for e in canvas.object_executors]
    self.idle = list(self.growers)
    self.queue: collections.deque[_Seed] = collections.deque()
    self.exhausted = False
    self._threshold = canvas.options.segment_threshold

  def fill(self) -> None:
    """Takes seeds from the policy until enough are in hand."""
    policy = self.canvas.seed_policy
    while not self.exhausted and len(self.queue) < _SEEDS_IN_HAND:
      pos = next(self.seeds, None)
      if pos is None:
        self.exhausted = True
        return
      self.queue.append(_Seed(pos, policy.idx))

  def assign(self) -> None:
    """Starts idle growers on the first seeds that no earlier object holds so far.

    A seed that an earlier object, still growing or waiting to be added,
    already holds would most likely be covered by it: it waits for its turn.
    """
    grown_ahead = sum(s.future is not None for s in self.queue)
    earlier: list[_Seed] = []
    for i, seed in enumerate(self.queue):
      if not self.idle:
        return
      # The first seed always goes: nothing waits on it.
      if i and grown_ahead >= _GROWN_AHEAD_PER_GROWER * len(self.growers):
        return
      if seed.future is None and not seed.ruled_out:
        if not self.canvas.seed_may_start(seed.pos):
          seed.ruled_out = True
        elif not any(s.covers(seed.pos, self._threshold) for s in earlier):
          seed.grower = self.idle.pop()
          seed.grower.abandon = False
          seed.future = self.threads.submit(_grow, seed.grower, seed.pos)
          grown_ahead += 1
      if seed.future is not None:
        earlier.append(seed)

  def reclaim(self) -> None:
    """Makes the growers whose objects are done idle; abandoned seeds wait to be grown again."""
    for seed in self.queue:
      if seed.grower is not None and seed.future.done():
        self.idle.append(seed.grower)
        seed.grower = None
        if seed.future.exception() is None and seed.future.result() is None:
          seed.future = None

  def prune(self) -> None:
    """Stops growing objects that will be redone, or that an earlier object likely covers."""
    earlier: list[_Seed] = []
    for seed in self.queue:
      if seed.grower is not None and earlier and not seed.grower.abandon and (
          not self.canvas.seed_may_start(seed.pos)
          or _steered_by_now(self.canvas.segmentation, seed.grower)
          or any(s.covers(seed.pos, self._threshold) for s in earlier)):
        seed.grower.abandon = True
      if seed.future is not None:
        earlier.append(seed)

  def wait(self) -> None:
    """Blocks until some grower finishes, pruning now and then."""
    running = [s.future for s in self.queue if s.grower is not None]
    concurrent.futures.wait(running, timeout=_PRUNE_EVERY_SEC,
                            return_when=concurrent.futures.FIRST_COMPLETED)
    self.prune()
    self.reclaim()

  def stop(self) -> None:
    for grower in self.growers:
      grower.abandon = True


def segment_all(canvas, seeds: Iterator[Position]) -> None:
  """Adds the objects of `seeds` to `canvas` as `canvas.try_seed` one by one would."""
  policy = canvas.seed_policy
  with concurrent.futures.ThreadPoolExecutor(len(canvas.object_executors),
                                             thread_name_prefix='ffn-object') as threads:
    pool = _Pool(canvas, seeds, threads)
    try:
      while True:
        pool.fill()
        pool.reclaim()
        pool.assign()
        if not pool.queue:
          break
        head = pool.queue[0]
        if head.grower is not None or (head.future is None and not head.ruled_out
                                       and canvas.seed_may_start(head.pos)):
          # Its object is growing, or will as soon as a grower is free.
          pool.wait()
          continue
        pool.queue.popleft()
        grown = head.future.result() if head.future is not None else None
        with _policy_at(policy, head.policy_idx):
          _add_in_order(canvas, head.pos, grown, canvas.counters)
        pool.prune()
    finally:
      pool.stop()


def _add_in_order(canvas, pos: Position, grown, counters) -> None:
  """Adds the object of `pos` as one at a time would now: `grown` if still valid, else regrown."""
  if not canvas.take_seed(pos):
    if grown is not None:
      counters['objects-grown-in-vain'].Increment()
      counters['fovs-grown-in-vain'].IncrementBy(grown.num_iters)
    return
  if grown is not None and still_valid(canvas.segmentation, grown):
    canvas.add_object(grown)
    return
  if grown is not None:
    counters['objects-regrown'].Increment()
    counters['fovs-regrown'].IncrementBy(grown.num_iters)
  canvas.grow_and_add(pos)
