"""Running the FFN for object growers: direct calls, or batches shared by several growers.

A grower holds a client of the executor (`executor.client()`, an
`ExecutorClient`): `client.predict(seed, image) -> logits` (zyx arrays, no
batch or channel axes), `client.close()` when it stops asking. A client joins
the executor's batches at its first call (not before: a client still choosing
its seeds would hold up the batches of the others) and leaves them at
`close`. The network is any `predict_fn(image, seed)` taking and returning
float32 `[b, z, y, x, 1]` arrays or tensors, such as an engine's
`predict_logits`. Upstream's `start_client() -> id`, `predict(id, seed,
image)` and `finish_client(id)` stay for code written against it.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Optional, Protocol

import numpy as np

from ffn.inference.inference_utils import Counters
from ffn.inference.inference_utils import timer_counter
from ffn.utils import errors

# Counter prefix of the model calls holding each number of FOVs ('executor-batches-of-4').
BATCHES_OF = 'executor-batches-of-'

PredictFn = Callable[[np.ndarray, np.ndarray], object]


class ExecutorError(RuntimeError):
  """The executor failed or was stopped; the request was not served (the cause is chained)."""


class ExecutorClient(Protocol):
  """A grower's handle on an executor."""

  def predict(self, seed: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The logits (zyx) of one FOV."""

  def close(self) -> None:
    """Leaves the executor (a later `predict` joins it again)."""


class _Client:
  """An ExecutorClient that registers with its executor at its first call."""

  def __init__(self, executor):
    self._executor = executor
    self._id: Optional[int] = None
    self._lock = threading.Lock()

  def predict(self, seed: np.ndarray, image: np.ndarray) -> np.ndarray:
    with self._lock:
      if self._id is None:
        self._id = self._executor.start_client()
      client_id = self._id
    return self._executor.predict(client_id, seed, image)

  def close(self) -> None:
    with self._lock:
      client_id, self._id = self._id, None
    if client_id is not None:
      self._executor.finish_client(client_id)

  def __enter__(self) -> '_Client':
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def _as_numpy(value) -> np.ndarray:
  return value.numpy() if hasattr(value, 'numpy') else np.asarray(value)


class DirectExecutor:
  """Calls the network in the caller's thread, one FOV at a time (batch size 1)."""

  def __init__(self, predict_fn: PredictFn, counters: Optional[Counters] = None):
    self._predict_fn = predict_fn
    self.counters = counters if counters is not None else Counters()
    self._lock = threading.Lock()
    self._next_id = 0

  def client(self) -> ExecutorClient:
    """A client for one grower."""
    return _Client(self)

  def start(self) -> None:
    """Nothing to start; present for symmetry with BatchExecutor."""

  def stop(self) -> None:
    """Nothing to stop."""

  def start_client(self) -> int:
    with self._lock:
      client_id, self._next_id = self._next_id, self._next_id + 1
    return client_id

  def finish_client(self, client_id: int) -> None:
    del client_id

  def predict(self, client_id: int, seed: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Logits (zyx) for one FOV."""
    del client_id
    with timer_counter(self.counters, 'executor-inference'):
      out = self._predict_fn(image[np.newaxis, ..., np.newaxis].astype(np.float32, copy=False),
                             seed[np.newaxis, ..., np.newaxis].astype(np.float32, copy=False))
      return _as_numpy(out)[0, ..., 0]


class _Request:
  """One FOV waiting for its logits."""

  __slots__ = ('seed', 'image', 'done', 'result', 'error')

  def __init__(self, seed: np.ndarray, image: np.ndarray):
    self.seed = seed
    self.image = image
    self.done = threading.Event()
    self.result = None
    self.error = None


def batch_sizes(counters: Counters) -> dict[int, int]:
  """Model calls of a BatchExecutor by the FOVs they held."""
  return {int(name[len(BATCHES_OF):]): counter.value for name, counter in counters.items()
          if name.startswith(BATCHES_OF)}


class BatchExecutor:
  """Batches the FOVs of several client threads into one network call.

  A batch holds one FOV from each of up to `batch_size` active clients: the
  server waits until min(active clients, batch_size) requests are queued.
  Clients must therefore finish (deregister) when they stop asking. A failure
  of the network call is raised in every waiting and later client.
  """

  def __init__(self, predict_fn: PredictFn, counters: Optional[Counters] = None,
               batch_size: int = 1):
    if batch_size < 1:
      raise errors.FFNError(f'batch_size must be >= 1, got {batch_size}')
    self._predict_fn = predict_fn
    self.counters = counters if counters is not None else Counters()
    self.batch_size = int(batch_size)
    self._cond = threading.Condition()
    self._pending: list[_Request] = []
    self._clients: set[int] = set()
    self._next_id = 0
    self._error: Optional[BaseException] = None
    self._stopping = False
    self._thread: Optional[threading.Thread] = None

  # -- server -----------------------------------------------------------------

  def start(self) -> None:
    """Starts the server thread."""
    if self._thread is None:
      self._thread = threading.Thread(target=self._serve, name='ffn-executor', daemon=True)
      self._thread.start()

  def stop(self) -> None:
    """Stops the server; requests still queued fail with ExecutorError."""
    with self._cond:
      self._stopping = True
      self._cond.notify_all()
    if self._thread is not None:
      self._thread.join()
      self._thread = None

  def _take_batch(self) -> Optional[list[_Request]]:
    with self._cond:
      while True:
        if self._stopping or self._error is not None:
          return None
        wanted = min(max(len(self._clients), 1), self.batch_size)
        if self._pending and len(self._pending) >= wanted:
          batch, self._pending = (self._pending[:self.batch_size],
                                  self._pending[self.batch_size:])
          return batch
        self._cond.wait()

  def _serve(self) -> None:
    while True:
      batch = self._take_batch()
      if batch is None:
        break
      try:
        with timer_counter(self.counters, 'executor-inference'):
          image = np.stack([r.image for r in batch])[..., np.newaxis].astype(
              np.float32, copy=False)
          seed = np.stack([r.seed for r in batch])[..., np.newaxis].astype(
              np.float32, copy=False)
          logits = _as_numpy(self._predict_fn(image, seed))
        self.counters['executor-batch-fovs'].IncrementBy(len(batch))
        self.counters[f'{BATCHES_OF}{len(batch)}'].Increment()
        for i, request in enumerate(batch):
          request.result = logits[i, ..., 0]
          request.done.set()
      except BaseException as e:  # pylint: disable=broad-except
        logging.exception('FFN executor failed')
        with self._cond:
          self._error = e
        for request in batch:
          request.error = e
          request.done.set()
        break
    self._fail_pending()

  def _fail_pending(self) -> None:
    with self._cond:
      pending, self._pending = self._pending, []
      error = self._error
    for request in pending:
      request.error = error if error is not None else ExecutorError('executor stopped')
      request.done.set()

  # -- clients ----------------------------------------------------------------

  def client(self) -> ExecutorClient:
    """A client for one grower; it joins the batches at its first call."""
    return _Client(self)

  def start_client(self) -> int:
    with self._cond:
      client_id = self._next_id
      self._next_id += 1
      self._clients.add(client_id)
      self.counters['executor-clients'].Set(len(self._clients))
      self._cond.notify_all()
    return client_id

  def finish_client(self, client_id: int) -> None:
    with self._cond:
      self._clients.discard(client_id)
      self.counters['executor-clients'].Set(len(self._clients))
      self._cond.notify_all()

  def predict(self, client_id: int, seed: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Logits (zyx) for one FOV, computed in the next batch."""
    del client_id
    request = _Request(seed, image)
    with self._cond:
      if self._error is not None:
        raise ExecutorError('the FFN executor failed earlier') from self._error
      if self._stopping or self._thread is None:
        raise ExecutorError('the FFN executor is not running')
      self._pending.append(request)
      self._cond.notify_all()
    with timer_counter(self.counters, 'client-wait'):
      request.done.wait()
    if request.error is not None:
      if isinstance(request.error, ExecutorError):
        raise request.error
      raise ExecutorError(f'FFN executor failed: {request.error!r}') from request.error
    return request.result
