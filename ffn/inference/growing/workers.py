"""The workers of the object pool: a grower each, with what records its growth and stops it.

A `Recorder` stands between a grower and both things its course depends on:
given to the grower as its `is_free` and its executor client, it notes every
answer and every model output in the current `GrowthRecord`, and replays a
source record's outputs while the course is the same. A `StopRequest` asks a
running growth to stop (and whether to start again) under a lock, whatever
the threads' order.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Callable, Optional

import numpy as np

from ffn.inference.engines.executor import ExecutorClient
from ffn.inference.growing import growth_record
from ffn.inference.growing.grower import ObjectGrower
from ffn.inference.inference_utils import Counters
from ffn.utils.axes import Position


class Recorder:
  """A grower's view of the segmentation and its model client, noted in the current record.

  Given to a grower as its `is_free` and its `client`; with no record set, it
  passes every call through unchanged.
  """

  def __init__(self, is_free: Callable[[Position], bool], client: ExecutorClient,
               counters: Counters):
    self._is_free = is_free
    self._client = client
    self._counters = counters
    self.record: Optional[growth_record.GrowthRecord] = None

  def is_free(self, pos: Position) -> bool:
    free = self._is_free(pos)
    if self.record is not None:
      self.record.query(pos, free)
    return free

  def predict(self, seed: np.ndarray, image: np.ndarray) -> np.ndarray:
    record = self.record
    if record is not None:
      replayed = record.replayed_output()
      if replayed is not None:
        self._counters['fovs-replayed'].Increment()
        return replayed
    logits = self._client.predict(seed, image)
    if record is not None:
      record.computed_output(logits)
    return logits

  def close(self) -> None:
    self._client.close()


class StopRequest:
  """Asks a worker to stop its growth, and says whether to start it again (thread-safe)."""

  def __init__(self):
    self._lock = threading.Lock()
    self._asked = False
    self._restart = False

  def ask(self, restart: bool = False) -> None:
    with self._lock:
      self._asked = True
      self._restart = self._restart or restart

  def asked(self) -> bool:
    with self._lock:
      return self._asked

  def take(self) -> tuple[bool, bool]:
    """(asked, restart), and clears them."""
    with self._lock:
      answer = (self._asked, self._restart)
      self._asked = self._restart = False
      return answer


@dataclasses.dataclass
class Worker:
  """A grower of the pool with its recorder and the request to stop its growth."""
  grower: ObjectGrower
  recorder: Recorder
  stop: StopRequest = dataclasses.field(default_factory=StopRequest)
