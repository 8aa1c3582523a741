"""Growing several objects of one canvas at once, with the one-at-a-time result.

Growing an object reads the segmentation in one place only: a position already
segmented is no place for the FOV (`Canvas.is_valid_pos`). Worker canvases
("growers", `Canvas.object_grower`), each with its own object map and model
instance, grow the objects of the next seeds against the segmentation as it
is, and record what they read of it and what the model computed
(`growth_record`). Objects are added in seed order, each after the seed checks
one at a time would make at that point; a grown object is kept if every
position it found unsegmented still is. The segmentation only grows, so then
the objects added before it could not have changed its course, and it is
exactly the object one at a time would have grown. Otherwise it is grown
again, in order, by the canvas itself.

Growing again replays the record up to the first read that now gives another
answer: only the FOVs after it run the model. A grower whose object was
steered by an object added meanwhile starts it again the same way.

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

from ffn.inference.growing import growth_record
from ffn.utils.axes import Position

# How many seeds that may still start an object are kept in hand beyond the
# one being added (bounds the work redone when a later object turns out to be
# covered by an earlier one); seeds already ruled out do not count, up to a
# queue of _MAX_SEEDS_QUEUED. Then how many grown objects may wait to be added,
# and how much memory they may hold (object map boxes and records).
_SEEDS_IN_HAND = 64
_MAX_SEEDS_QUEUED = 4096
_GROWN_AHEAD_PER_GROWER = 16
_GROWN_AHEAD_BYTES = 2 << 30
# How often objects grown ahead are checked against the objects before them.
_PRUNE_EVERY_SEC = 0.05
# Model outputs kept for seeds waiting to be grown again after a growth
# stopped half-way; beyond this, the latest seeds' records are dropped.
_WAITING_RECORD_BYTES = 512 << 20


@dataclasses.dataclass
class _Seed:
  """A seed taken from the policy, and the object a grower grows from it."""
  pos: Position
  policy_idx: int  # The seed policy's idx just after yielding `pos`.
  ruled_out: bool = False  # By the segmentation (for good: it only grows).
  grower: Any = None  # While growing.
  future: Optional[concurrent.futures.Future] = None
  record: Optional[growth_record.GrowthRecord] = None  # Of a growth stopped half-way.
  restart: bool = False  # Its growth was steered: start again, replaying what holds.

  def finished(self):
    """The object grown from this seed, waiting to be added (None if none)."""
    if self.future is None or not self.future.done() or self.future.exception() is not None:
      return None
    return self.future.result()

  def grown_bytes(self) -> int:
    """Memory held by this seed's grown object, waiting to be added (0 if none)."""
    obj = self.finished()
    if obj is None:
      return 0
    return obj.seed_box.nbytes + (obj.record.nbytes if obj.record is not None else 0)

  def visited(self) -> np.ndarray:
    """The seed and the positions its growth so far found free for the FOV, zyx (N, 3)."""
    grower = self.grower
    record = (grower.record if grower is not None else None) or self.record
    own = np.array([self.pos], dtype=np.int64)
    return own if record is None else np.concatenate([own, record.free_positions()])

  def holds_any(self, positions: np.ndarray, threshold: float) -> bool:
    """Whether this seed's object, as grown so far, holds any of the zyx `positions`."""
    if self.grower is not None:
      return bool(np.any(self.grower.seed[tuple(positions.T)] >= threshold))
    obj = self.finished()
    if obj is None:
      return False
    local = positions - np.array([b.start for b in obj.box])
    local = local[np.all((local >= 0) & (local < obj.seed_box.shape), axis=1)]
    return bool(np.any(obj.seed_box[tuple(local.T)] >= threshold))

  def likely_covered(self, earlier: list[_Seed], threshold: float) -> bool:
    """Whether an earlier object already holds this seed or a place its FOV went.

    Then that object most likely covers it, or steers its course: growing it
    now would be wasted.
    """
    if not earlier:
      return False
    visited = self.visited()
    return any(s.holds_any(visited, threshold) for s in earlier)


def _grow(grower, seed: _Seed):
  """The object `grower` grows from `seed` (None if abandoned; its record stays with `seed`)."""
  start = time.time()
  while True:
    grower.record = growth_record.GrowthRecord(seed.record)
    seed.restart = False
    num_iters = grower.segment_at(seed.pos)
    seed.record = grower.record
    try:
      if not grower.abandon:
        return grower.grown(seed.pos, num_iters, time.time() - start, copy_seed=True)
    finally:
      grower.record = None
    if not seed.restart:
      grower.counters['objects-abandoned'].Increment()
      return None
    grower.abandon = False
    grower.counters['objects-restarted'].Increment()


def drop_records_over(seeds, budget: int) -> None:
  """Drops waiting seeds' records, latest first, until the rest hold at most `budget` bytes."""
  waiting = [s for s in seeds if s.record is not None and s.future is None]
  total = sum(s.record.nbytes for s in waiting)
  for seed in reversed(waiting):
    if total <= budget:
      return
    total -= seed.record.nbytes
    seed.record = None


def _any_segmented(segmentation: np.ndarray, positions: np.ndarray) -> bool:
  """Whether any of the zyx `positions` (an (N, 3) array) is segmented."""
  return bool(np.any(segmentation[tuple(positions.T)] > 0))


def _steered(segmentation: np.ndarray, record) -> bool:
  """Whether a position the recorded growth found unsegmented is segmented now."""
  return record is not None and _any_segmented(segmentation, record.free_positions())


def still_valid(segmentation: np.ndarray, obj) -> bool:
  """Whether every position the object's growth found unsegmented still is."""
  return not _steered(segmentation, obj.record)


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
    """Takes seeds from the policy until enough that may start an object are in hand."""
    policy = self.canvas.seed_policy
    live = sum(not s.ruled_out for s in self.queue)
    while not self.exhausted and live < _SEEDS_IN_HAND and len(self.queue) < _MAX_SEEDS_QUEUED:
      pos = next(self.seeds, None)
      if pos is None:
        self.exhausted = True
        return
      # Ruled out now is ruled out for good: the segmentation only grows.
      seed = _Seed(pos, policy.idx, ruled_out=not self.canvas.seed_may_start(pos))
      self.queue.append(seed)
      live += not seed.ruled_out

  def assign(self) -> None:
    """Starts idle growers on the first seeds that are not likely covered.

    A seed that an earlier object, still growing or waiting to be added,
    already holds would most likely be covered by it: it waits for its turn.
    So does one whose earlier growth went where such an object is.
    """
    grown_ahead = sum(s.future is not None for s in self.queue)
    ahead_bytes = sum(s.grown_bytes() for s in self.queue)
    earlier: list[_Seed] = []
    for i, seed in enumerate(self.queue):
      if not self.idle:
        return
      # The first seed always goes: nothing waits on it.
      if i and (grown_ahead >= _GROWN_AHEAD_PER_GROWER * len(self.growers)
                or ahead_bytes >= _GROWN_AHEAD_BYTES):
        return
      if seed.future is None and not seed.ruled_out:
        if not self.canvas.seed_may_start(seed.pos):
          seed.ruled_out = True
        elif not seed.likely_covered(earlier, self._threshold):
          seed.grower = self.idle.pop()
          seed.grower.abandon = False
          seed.future = self.threads.submit(_grow, seed.grower, seed)
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
    drop_records_over(self.queue, _WAITING_RECORD_BYTES)

  def prune(self) -> None:
    """Restarts objects whose course changed; stops those an earlier object likely covers."""
    earlier: list[_Seed] = []
    for seed in self.queue:
      if seed.grower is not None and earlier and not seed.grower.abandon:
        if (not self.canvas.seed_may_start(seed.pos)
            or seed.likely_covered(earlier, self._threshold)):
          seed.grower.abandon = True
        elif _steered(self.canvas.segmentation, seed.grower.record):
          seed.restart = True  # Set first: the grower reads it once it sees `abandon`.
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
    for seed in self.queue:
      seed.restart = False
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
          _add_in_order(canvas, head.pos, grown)
        pool.prune()
    finally:
      pool.stop()


def _add_in_order(canvas, pos: Position, grown) -> None:
  """Adds the object of `pos` as one at a time would now: `grown` if still valid, else regrown."""
  counters = canvas.counters
  if not canvas.take_seed(pos):
    if grown is not None:
      counters['objects-grown-in-vain'].Increment()
    return
  if grown is not None and still_valid(canvas.segmentation, grown):
    canvas.add_object(grown)
    return
  if grown is not None:
    counters['objects-regrown'].Increment()
  canvas.grow_and_add(pos, replay=grown.record if grown is not None else None)
