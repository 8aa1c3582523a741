"""The blockwise run's progress in the log: a line per finished block, and daisy's bars on a terminal.

daisy calls a progress observer's `on_start`, `on_progress` and `on_finish` with the states of
all tasks; `BlockLog` is one, and hands the same calls on to daisy's own bars where wanted.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable, Mapping, Optional

from ffn.utils import progress


def daisy_bars(task_order):
  """daisy's default observer: one tqdm bar per task (what `progress=True` gives)."""
  # daisy exports no name for it; run_blockwise(progress=True) builds this same object.
  from daisy._progress import _TqdmObserver  # pylint: disable=g-import-not-at-top
  return _TqdmObserver(task_order=task_order)


def bars_wanted(progress_bars: Optional[bool]) -> bool:
  """Whether to draw bars: as asked, else only on a terminal (in a log file they are noise)."""
  if progress_bars is not None:
    return progress_bars
  return bool(getattr(sys.stderr, 'isatty', lambda: False)())


class BlockLog:
  """Logs each block a task finishes or gives up on: blocks done of total, failed, ETA.

  `left_out` counts, per task, the blocks the plan does not run, which daisy counts as done
  before this run; they are left out of both done and total here. The ETA assumes the task's
  remaining blocks go at its mean rate since its first block started in this run.
  """

  def __init__(self, left_out: Mapping[str, int], bars=None,
               clock: Callable[[], float] = time.monotonic):
    self._left_out = dict(left_out)
    self._bars = bars
    self._clock = clock
    self._seen: dict[str, tuple[int, int]] = {}
    self._meters: dict[str, progress.RateMeter] = {}

  def on_start(self, states) -> None:
    for name, state in states.items():
      self._seen[name] = _ran_and_failed(state)
    if self._bars is not None:
      self._bars.on_start(states)

  def on_progress(self, states) -> None:
    for name, state in states.items():
      self._log_changes(name, state)
    if self._bars is not None:
      self._bars.on_progress(states)

  def on_finish(self, states) -> None:
    for name, state in states.items():
      self._log_changes(name, state)
    if self._bars is not None:
      self._bars.on_finish(states)

  def _log_changes(self, name: str, state) -> None:
    ran, failed = _ran_and_failed(state)
    last_ran, last_failed = self._seen.get(name, (ran, failed))
    self._seen[name] = (ran, failed)
    if name not in self._meters and (int(state.processing_count) > 0 or ran > last_ran
                                     or failed > last_failed):
      # The task started now; blocks finished since the last call started after it.
      self._meters[name] = progress.RateMeter(last_ran, self._clock)
    left_out = self._left_out.get(name, 0)
    total = int(state.total_block_count) - left_out
    # Blocks done before this run (daisy's skipped ones) count as done, not as run now.
    done_before = int(state.skipped_count) - left_out
    rate = self._meters[name].rate(ran) if name in self._meters else None
    for n in range(last_ran + 1, ran + 1):
      logging.info('%s: a block done; %s blocks done, %d failed, %s.', name,
                   progress.done_of(done_before + n, total), last_failed,
                   progress.eta(done_before + n, total, rate))
    for n in range(last_failed + 1, failed + 1):
      logging.info('%s: a block failed; %s blocks done, %d failed, %s.', name,
                   progress.done_of(done_before + ran, total), n,
                   progress.eta(done_before + ran, total, rate))


def _ran_and_failed(state) -> tuple[int, int]:
  """(blocks completed in this run, blocks failed) of a daisy task state."""
  return int(state.completed_count) - int(state.skipped_count), int(state.failed_count)
