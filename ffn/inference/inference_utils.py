"""Counters and timers for inference jobs, safe to share between threads."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import IO, Callable, Iterator, Optional, Union

import numpy as np

from ffn.utils import atomic

MSEC_IN_SEC = 1000


# The CamelCase method names are the counter interface upstream code calls.
# pylint: disable=invalid-name
class StatCounter:
  """An integer counter; updates optionally propagate to a `parent` counter."""

  def __init__(self, update: Optional[Callable[[], None]] = None, name: str = '',
               parent: Optional['StatCounter'] = None):
    self._value = 0
    self._update = update
    self._lock = threading.Lock()
    self._parent = parent
    self.name = name

  def Increment(self) -> None:
    """Adds one."""
    self.IncrementBy(1)

  def IncrementBy(self, x, export: bool = True) -> None:
    """Adds `x` (truncated to an int)."""
    del export  # Kept for call compatibility; there is no monitoring export here.
    x = int(x)
    with self._lock:
      self._value += x
    if self._update is not None:
      self._update()
    if self._parent is not None:
      self._parent.IncrementBy(x)

  def Set(self, x, export: bool = True) -> None:
    """Sets the value to `x` (parents see the difference)."""
    del export
    x = int(x)
    with self._lock:
      diff = x - self._value
      self._value = x
    if self._update is not None:
      self._update()
    if self._parent is not None and diff:
      self._parent.IncrementBy(diff)

  def Get(self) -> int:
    """The current value."""
    return self.value

  @property
  def value(self) -> int:
    """The current value."""
    return self._value

  def __repr__(self) -> str:
    return f'StatCounter(name={self.name!r}, value={self._value})'
# pylint: enable=invalid-name


class Counters:
  """A named set of StatCounters, created on first access."""

  def __init__(self, parent: Optional['Counters'] = None):
    self._lock = threading.Lock()
    self._counters: dict[str, StatCounter] = {}
    self.parent = parent

  def reset(self) -> None:
    """Drops every counter."""
    with self._lock:
      self._counters = {}

  def __getitem__(self, name: str) -> StatCounter:
    # Lock-free when the counter exists (the per-FOV case); dict reads are atomic.
    counter = self._counters.get(name)
    if counter is not None:
      return counter
    with self._lock:
      counter = self._counters.get(name)
      if counter is None:
        parent = self.parent[name] if self.parent is not None else None
        counter = StatCounter(name=name, parent=parent)
        self._counters[name] = counter
      return counter

  def __contains__(self, name: str) -> bool:
    with self._lock:
      return name in self._counters

  def __iter__(self) -> Iterator[tuple[str, StatCounter]]:
    return iter(self.items())

  def items(self) -> list[tuple[str, StatCounter]]:
    """A snapshot of (name, counter) pairs, sorted by name."""
    with self._lock:
      return sorted(self._counters.items())

  def get_sub_counters(self) -> 'Counters':
    """A new Counters whose counters also add into the same-named counters of this one."""
    return Counters(parent=self)

  def as_dict(self) -> dict[str, int]:
    """The current values by name."""
    return {name: counter.value for name, counter in self.items()}

  def dump(self, file: Union[str, IO[str]]) -> None:
    """Writes sorted `name: value` lines to a path (atomically) or an open text file."""
    text = ''.join(f'{name}: {value}\n' for name, value in self.as_dict().items())
    if hasattr(file, 'write'):
      file.write(text)
    else:
      atomic.atomic_write_text(file, text)

  def dumps(self) -> str:
    """The values as a JSON object of name -> value."""
    return json.dumps(self.as_dict(), sort_keys=True)

  def loads(self, encoded: Union[str, bytes]) -> None:
    """Sets the counters named in a `dumps()` string to its values."""
    for name, value in json.loads(encoded).items():
      self[name].Set(value)


@contextlib.contextmanager
def timer_counter(counters: Counters, name: str):
  """Times the block: adds 1 to `<name>-calls` and the elapsed ms to `<name>-time-ms`."""
  calls = counters[name + '-calls']
  timer = counters[name + '-time-ms']
  start = time.perf_counter()
  try:
    yield timer, calls
  finally:
    calls.Increment()
    timer.IncrementBy((time.perf_counter() - start) * MSEC_IN_SEC)


class TimedIter:
  """An iterator wrapper that times every `next` with `timer_counter`."""

  def __init__(self, it, counters: Counters, counter_name: str):
    self.it = iter(it)
    self.counters = counters
    self.counter_name = counter_name

  def __iter__(self) -> 'TimedIter':
    return self

  def __next__(self):
    with timer_counter(self.counters, self.counter_name):
      return next(self.it)


def compute_histogram_lut(image: np.ndarray) -> np.ndarray:
  """A 256-entry uint8 table mapping uniformly distributed intensities onto `image`'s distribution."""
  import skimage.exposure  # pylint: disable=g-import-not-at-top  (only needed here)
  cdf, bins = skimage.exposure.cumulative_distribution(np.asarray(image))
  positions = np.searchsorted(cdf, np.arange(256) / 255.0)
  return np.asarray(bins, dtype=np.int64)[np.minimum(positions, len(bins) - 1)].astype(np.uint8)


def match_histogram(image: np.ndarray, lut: np.ndarray,
                    mask: Optional[np.ndarray] = None) -> None:
  """Gives each z-slice of `image` the intensity distribution of `lut`, in place.

  Each slice is contrast-equalised (CLAHE), its CDF is taken over the voxels
  not in `mask`, and the CDF values index `lut` (see compute_histogram_lut).
  """
  import skimage.exposure  # pylint: disable=g-import-not-at-top
  lut = np.asarray(lut)
  for z in range(image.shape[0]):
    equalised = (skimage.exposure.equalize_adapthist(image[z]) * 255).astype(np.uint8)
    counted = equalised if mask is None else equalised[~mask[z]]
    if counted.size == 0:
      continue
    cdf, bins = skimage.exposure.cumulative_distribution(counted)
    # Values above every counted one map to the top of the CDF.
    cdf = np.append(cdf, 1.0)
    bins = np.append(bins, 255)
    image[z] = lut[(cdf[np.searchsorted(bins, equalised)] * 255).astype(np.uint8)]
