"""Progress lines of long jobs: done of total, rate and ETA, worded one way everywhere."""

from __future__ import annotations

import math
import time
from typing import Callable, Optional


def duration(seconds: float) -> str:
  """A duration as people read it: '45 s', '12 min 5 s', '3 h 7 min', '2 d 4 h'."""
  seconds = max(0, int(round(seconds)))
  days, rest = divmod(seconds, 86400)
  hours, rest = divmod(rest, 3600)
  minutes, secs = divmod(rest, 60)
  if days:
    return f'{days} d {hours} h'
  if hours:
    return f'{hours} h {minutes} min'
  if minutes:
    return f'{minutes} min {secs} s'
  return f'{secs} s'


def done_of(done: int, total: Optional[int]) -> str:
  """'3/8 (37.5%)', or '3 of unknown total' when the total is not known."""
  if total is None:
    return f'{done} of unknown total'
  percent = 100.0 * done / total if total else 100.0
  return f'{done}/{total} ({percent:.1f}%)'


def eta_seconds(done: int, total: Optional[int], rate: Optional[float]) -> Optional[float]:
  """Seconds until `total` at `rate` per second from `done`; None when either is unknown."""
  if total is None:
    return None
  if done >= total:
    return 0.0
  if rate is None or not math.isfinite(rate) or rate <= 0:
    return None
  return (total - done) / rate


def eta(done: int, total: Optional[int], rate: Optional[float]) -> str:
  """'ETA 12 min 5 s', or 'ETA unknown'."""
  seconds = eta_seconds(done, total, rate)
  return 'ETA unknown' if seconds is None else f'ETA {duration(seconds)}'


class RateMeter:
  """The mean rate of a count since it was started (or restarted)."""

  def __init__(self, done: int = 0, clock: Callable[[], float] = time.monotonic):
    self._clock = clock
    self.restart(done)

  def restart(self, done: int) -> None:
    """Counts the rate from `done` at this moment."""
    self._start_done = done
    self._start_time = self._clock()

  def rate(self, done: int) -> Optional[float]:
    """Units per second since the start; None before any time passed or any unit was done."""
    elapsed = self._clock() - self._start_time
    if elapsed <= 0 or done <= self._start_done:
      return None
    return (done - self._start_done) / elapsed

  def elapsed(self) -> float:
    """Seconds since the start."""
    return self._clock() - self._start_time
