"""Growing several objects of one subvolume at once, with the one-at-a-time result.

Growing an object reads the segmentation in one place only: the `is_free`
callable its grower is given (see `grower`). Workers, each a grower with its
own object map and model instance, grow the objects of the next seeds against
the segmentation as it is, and record what their `is_free` answered and what
the model computed (`growth_record`). Objects are added in seed order by the
seed driver's own steps (`SeedDriver.take`, `SeedDriver.add`); a grown object
is kept if every position it found free still is. The segmentation only
grows, so then the objects added before it could not have changed its course,
and it is exactly the object one at a time would have grown. Otherwise it is
grown again, in order.

Growing again replays the record up to the first read that now gives another
answer: only the FOVs after it run the model. A worker whose object was
steered by an object added meanwhile starts it again the same way.

Why: one model call spread over all cores waits at every layer for the
slowest core, and on shared machines cores slow down independently; objects
grown side by side, each on its own cores, do not wait for each other.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import time
from typing import Iterator, Optional, Sequence

import numpy as np

from ffn.inference.growing import growth_record
from ffn.inference.growing.driver import Seed
from ffn.inference.growing.driver import SeedDriver
from ffn.inference.growing.grower import GrownObject
from ffn.inference.growing.workers import Worker
from ffn.inference.inference_utils import Counters
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
class _Grown:
  """An object grown ahead, with the record of what its growth read and computed."""
  obj: GrownObject
  record: growth_record.GrowthRecord


@dataclasses.dataclass
class _Seed:
  """A seed taken from the policy, and the object a worker grows from it."""
  seed: Seed
  ruled_out: bool = False  # By the segmentation (for good: it only grows).
  worker: Optional[Worker] = None  # While growing.
  future: Optional[concurrent.futures.Future] = None
  record: Optional[growth_record.GrowthRecord] = None  # Of a growth stopped half-way.

  @property
  def pos(self) -> Position:
    return self.seed.pos

  def finished(self) -> Optional[_Grown]:
    """The object grown from this seed, waiting to be added (None if none)."""
    if self.future is None or not self.future.done() or self.future.exception() is not None:
      return None
    return self.future.result()

  def grown_bytes(self) -> int:
    """Memory held by this seed's grown object, waiting to be added (0 if none)."""
    grown = self.finished()
    if grown is None:
      return 0
    return grown.obj.object_map_box.nbytes + grown.record.nbytes

  def visited(self) -> np.ndarray:
    """The seed and the positions its growth so far found free for the FOV, zyx (N, 3)."""
    worker = self.worker
    record = (worker.recorder.record if worker is not None else None) or self.record
    own = np.array([self.pos], dtype=np.int64)
    return own if record is None else np.concatenate([own, record.free_positions()])

  def holds_any(self, positions: np.ndarray, threshold: float) -> bool:
    """Whether this seed's object, as grown so far, holds any of the zyx `positions`."""
    worker = self.worker
    if worker is not None:
      # Read while the worker grows it: a guess that only decides what to grow next.
      return bool(np.any(worker.grower.object_map[tuple(positions.T)] >= threshold))
    grown = self.finished()
    if grown is None:
      return False
    obj = grown.obj
    local = positions - np.array([b.start for b in obj.box])
    local = local[np.all((local >= 0) & (local < obj.object_map_box.shape), axis=1)]
    return bool(np.any(obj.object_map_box[tuple(local.T)] >= threshold))

  def likely_covered(self, earlier: list[_Seed], threshold: float) -> bool:
    """Whether an earlier object already holds this seed or a place its FOV went.

    Then that object most likely covers it, or steers its course: growing it
    now would be wasted.
    """
    if not earlier:
      return False
    visited = self.visited()
    return any(s.holds_any(visited, threshold) for s in earlier)


def _grow(worker: Worker, seed: _Seed, counters: Counters) -> Optional[_Grown]:
  """The object `worker` grows from `seed` (None if abandoned; its record stays with `seed`)."""
  start = time.time()
  grower, recorder = worker.grower, worker.recorder
  while True:
    record = recorder.record = growth_record.GrowthRecord(seed.record)
    try:
      num_iters = grower.grow(seed.pos, stop=worker.stop.asked)
    finally:
      recorder.record = None
    seed.record = record
    asked, restart = worker.stop.take()
    if not asked:
      return _Grown(grower.grown(seed.pos, num_iters, time.time() - start, copy=True), record)
    if not restart:
      counters['objects-abandoned'].Increment()
      return None
    counters['objects-restarted'].Increment()


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


def steered(segmentation: np.ndarray, record: Optional[growth_record.GrowthRecord]) -> bool:
  """Whether a position the recorded growth found free is segmented now."""
  return record is not None and _any_segmented(segmentation, record.free_positions())


class _Pool:
  """The seeds in hand, in seed order, and the workers growing their objects."""

  def __init__(self, driver: SeedDriver, seeds: Iterator[Seed], workers: Sequence[Worker],
               threads):
    self.driver = driver
    self.seeds = seeds
    self.threads = threads
    self.workers = list(workers)
    self.idle = list(self.workers)
    self.queue: collections.deque[_Seed] = collections.deque()
    self.exhausted = False
    self._threshold = driver.options.segment_threshold

  def fill(self) -> None:
    """Takes seeds from the policy until enough that may start an object are in hand."""
    live = sum(not s.ruled_out for s in self.queue)
    while not self.exhausted and live < _SEEDS_IN_HAND and len(self.queue) < _MAX_SEEDS_QUEUED:
      seed = next(self.seeds, None)
      if seed is None:
        self.exhausted = True
        return
      # Ruled out now is ruled out for good: the segmentation only grows.
      entry = _Seed(seed, ruled_out=not self.driver.may_start(seed.pos))
      self.queue.append(entry)
      live += not entry.ruled_out

  def assign(self) -> None:
    """Starts idle workers on the first seeds that are not likely covered.

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
      if i and (grown_ahead >= _GROWN_AHEAD_PER_GROWER * len(self.workers)
                or ahead_bytes >= _GROWN_AHEAD_BYTES):
        return
      if seed.future is None and not seed.ruled_out:
        if not self.driver.may_start(seed.pos):
          seed.ruled_out = True
        elif not seed.likely_covered(earlier, self._threshold):
          seed.worker = self.idle.pop()
          seed.worker.stop.take()
          seed.future = self.threads.submit(_grow, seed.worker, seed, self.driver.counters)
          grown_ahead += 1
      if seed.future is not None:
        earlier.append(seed)

  def reclaim(self) -> None:
    """Makes the workers whose objects are done idle; abandoned seeds wait to be grown again."""
    for seed in self.queue:
      if seed.worker is not None and seed.future.done():
        self.idle.append(seed.worker)
        seed.worker = None
        if seed.future.exception() is None and seed.future.result() is None:
          seed.future = None
    drop_records_over(self.queue, _WAITING_RECORD_BYTES)

  def prune(self) -> None:
    """Restarts objects whose course changed; stops those an earlier object likely covers."""
    segmentation = self.driver.state.segmentation
    earlier: list[_Seed] = []
    for seed in self.queue:
      worker = seed.worker
      if worker is not None and earlier and not worker.stop.asked():
        if (not self.driver.may_start(seed.pos)
            or seed.likely_covered(earlier, self._threshold)):
          worker.stop.ask()
        elif steered(segmentation, worker.recorder.record):
          worker.stop.ask(restart=True)
      if seed.future is not None:
        earlier.append(seed)

  def wait(self) -> None:
    """Blocks until some worker finishes, pruning now and then."""
    running = [s.future for s in self.queue if s.worker is not None]
    concurrent.futures.wait(running, timeout=_PRUNE_EVERY_SEC,
                            return_when=concurrent.futures.FIRST_COMPLETED)
    self.prune()
    self.reclaim()

  def stop(self) -> None:
    for worker in self.workers:
      worker.stop.take()
      worker.stop.ask()


def run(driver: SeedDriver, seeds: Iterator[Seed], in_order: Worker,
        workers: Sequence[Worker]) -> None:
  """Adds the objects of `seeds` as `driver.run` one by one would, growing with `workers`.

  `in_order` grows again, in seed order, the objects whose course changed.
  """
  with concurrent.futures.ThreadPoolExecutor(len(workers),
                                             thread_name_prefix='ffn-object') as threads:
    pool = _Pool(driver, seeds, workers, threads)
    try:
      while True:
        pool.fill()
        pool.reclaim()
        pool.assign()
        if not pool.queue:
          break
        head = pool.queue[0]
        if head.worker is not None or (head.future is None and not head.ruled_out
                                       and driver.may_start(head.pos)):
          # Its object is growing, or will as soon as a worker is free.
          pool.wait()
          continue
        pool.queue.popleft()
        grown = head.future.result() if head.future is not None else None
        _add_in_order(driver, in_order, head.seed, grown)
        pool.prune()
    finally:
      pool.stop()


def _add_in_order(driver: SeedDriver, in_order: Worker, seed: Seed,
                  grown: Optional[_Grown]) -> None:
  """Adds the object of `seed` as one at a time would now: `grown` if still valid, else regrown."""
  counters = driver.counters
  if not driver.take(seed):
    if grown is not None:
      counters['objects-grown-in-vain'].Increment()
    return
  if grown is not None and not steered(driver.state.segmentation, grown.record):
    driver.add(grown.obj, seed)
    return
  if grown is not None:
    counters['objects-regrown'].Increment()
  recorder = in_order.recorder
  recorder.record = (growth_record.GrowthRecord(grown.record, max_bytes=0)
                     if grown is not None else None)
  try:
    driver.grow_and_add(in_order.grower, seed)
  finally:
    recorder.record = None
