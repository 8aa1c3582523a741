"""Progress of a running subvolume in the log: seeds done of total, FOVs/s, ETA, objects."""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional

from ffn.utils import progress

# (seeds taken, seeds listed) of the running seed policy, or None where it cannot tell.
SeedsDone = Callable[[], Optional[tuple[int, int]]]


class ProgressLogger:
  """Logs seeds done of total, FOV rate, ETA and objects of a running canvas every `interval_sec`.

  The ETA assumes the remaining seeds go at this run's mean seed rate; a policy that does not
  list its seeds up front gives no total, and the line says 'ETA unknown'.
  """

  def __init__(self, counters, corner, interval_sec: float = 30.0,
               seeds_done: SeedsDone = lambda: None,
               clock: Callable[[], float] = time.monotonic):
    self._counters = counters
    self._corner = corner
    self._interval = interval_sec
    self._seeds_done = seeds_done
    self._clock = clock
    self._last = clock()
    self._fovs = progress.RateMeter(counters['inference-calls'].value, clock)
    # A new run starts at seed 0; a restored one is metered from the first seeds it reports.
    self._seeds: Optional[progress.RateMeter] = progress.RateMeter(0, clock)

  def follow_seeds(self, seeds_done: SeedsDone) -> None:
    """Reads the seed counts from `seeds_done` (the canvas, once it exists)."""
    self._seeds_done = seeds_done

  def restart(self) -> None:
    """Counts the rates from now (after a checkpoint restore: this run's FOVs and seeds only)."""
    self._last = self._clock()
    self._fovs.restart(self._counters['inference-calls'].value)
    self._seeds = None

  def maybe_log(self) -> None:
    now = self._clock()
    if now - self._last >= self._interval:
      self._last = now
      self.log()

  def log(self, final: bool = False) -> None:
    fovs = self._counters['inference-calls'].value
    seeds = self._seeds_done()
    parts = []
    if seeds is not None:
      if self._seeds is None:
        self._seeds = progress.RateMeter(seeds[0], self._clock)
      parts.append(f'seeds {progress.done_of(*seeds)}')
    parts.append(f'{fovs} FOVs ({self._fovs.rate(fovs) or 0.0:.2f} FOVs/s)')
    parts.append(f'{self._counters["segments-created"].value} objects')
    parts.append(f'{self._counters["voxels-segmented"].value} voxels segmented')
    if final:
      parts.append(f'in {progress.duration(self._fovs.elapsed())}')
    elif seeds is None:
      parts.append('ETA unknown')
    else:
      parts.append(progress.eta(seeds[0], seeds[1], self._seeds.rate(seeds[0])))
    logging.info('%s subvolume %r: %s.', 'Finished' if final else 'Progress', self._corner,
                 ', '.join(parts))
