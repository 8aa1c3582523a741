"""Progress of a running subvolume in the log: FOVs, their rate, objects and voxels."""

from __future__ import annotations

import logging
import time


class ProgressLogger:
  """Logs FOV rate and object count of a running canvas every `interval_sec`."""

  def __init__(self, counters, corner, interval_sec: float = 30.0):
    self._counters = counters
    self._corner = corner
    self._interval = interval_sec
    self._start = time.time()
    self._last = self._start
    self._fovs_at_start = counters['inference-calls'].value

  def restart(self) -> None:
    """Counts the rate from now (after a checkpoint restore: this run's FOVs only)."""
    self._start = self._last = time.time()
    self._fovs_at_start = self._counters['inference-calls'].value

  def maybe_log(self) -> None:
    now = time.time()
    if now - self._last >= self._interval:
      self._last = now
      self.log()

  def log(self, final: bool = False) -> None:
    elapsed = max(time.time() - self._start, 1e-9)
    fovs = self._counters['inference-calls'].value
    rate = (fovs - self._fovs_at_start) / elapsed
    logging.info('%s subvolume %r: %d FOVs (%.2f FOVs/s), %d objects, %d voxels segmented.',
                 'Finished' if final else 'Progress', self._corner, fovs, rate,
                 self._counters['segments-created'].value,
                 self._counters['voxels-segmented'].value)
