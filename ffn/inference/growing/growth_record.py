"""What one growth of an object read and computed, so that growing it again can reuse it.

An object's course depends on the segmentation in one place only: the grower's
`is_free(pos)` (see `grower`). A record keeps, in
order, every position that check read the segmentation at, with the answer,
and every model output. Grown again from the same seed, the object follows the
same course for as long as each check gives the recorded answer; until the
first that does not, the recorded outputs stand in for the model calls, and
from there on the model runs (see object_pool).
"""

from __future__ import annotations

import threading
from typing import Optional

import numpy as np

from ffn.utils.axes import Position

# Bytes of outputs kept per record: 33^3 float32 logits are 144 KiB, so 910
# FOVs; a longer growth replays its first outputs only.
MAX_BYTES = 128 << 20


class GrowthRecord:
  """One growth's segmentation reads and model outputs, replaying `source` while they agree."""

  def __init__(self, source: Optional[GrowthRecord] = None, max_bytes: int = MAX_BYTES):
    self.queries: list[tuple[Position, bool]] = []
    self._free: list[Position] = []  # The positions of the queries found free, in order.
    # The grower appends while the pool reads the free positions from another thread.
    self._free_lock = threading.Lock()
    self.outputs: list[np.ndarray] = []
    self.calls = 0  # Model calls of this growth, replayed ones included.
    self.replayed = 0
    self._source = source
    self._max_bytes = max_bytes
    self.nbytes = 0  # Of the outputs kept.
    self._same_course = source is not None

  def query(self, pos: Position, free: bool) -> None:
    """Notes that `pos` was found unsegmented (`free`) or segmented."""
    entry = (tuple(int(p) for p in pos), bool(free))
    if self._same_course:
      i = len(self.queries)
      self._same_course = i < len(self._source.queries) and self._source.queries[i] == entry
    self.queries.append(entry)
    if free:
      with self._free_lock:
        self._free.append(entry[0])

  def replayed_output(self) -> Optional[np.ndarray]:
    """The source's output for this model call while the course is the same (a copy), else None."""
    if not (self._same_course and self.calls < len(self._source.outputs)):
      self._same_course = False
      return None
    out = self._source.outputs[self.calls]
    self._keep(out)  # Never changed in place: shared, not copied.
    self.calls += 1
    self.replayed += 1
    return out.copy()

  def computed_output(self, logits: np.ndarray) -> None:
    """Notes the model output of this call (before the canvas changes it in place)."""
    self._keep(logits, copy=True)
    self.calls += 1

  def _keep(self, out: np.ndarray, copy: bool = False) -> None:
    # Outputs are kept from the first call on without gaps, so call k's is outputs[k].
    if len(self.outputs) == self.calls and self.nbytes + out.nbytes <= self._max_bytes:
      self.outputs.append(out.copy() if copy else out)
      self.nbytes += out.nbytes

  @property
  def computed(self) -> int:
    """Model calls that ran the model."""
    return self.calls - self.replayed

  def free_positions(self) -> np.ndarray:
    """The zyx positions found unsegmented, as an (N, 3) array."""
    with self._free_lock:
      free = list(self._free)
    return np.array(free, dtype=np.int64).reshape(-1, 3)
