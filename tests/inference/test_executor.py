"""Tests of the executors: batching across client threads, failures, direct calls."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ffn.inference.engines import executor


def _fov(value, shape=(3, 4, 5)):
  return np.full(shape, value, dtype=np.float32)


class _Recorder:
  """predict_fn returning seed + image, recording the batch sizes it saw."""

  def __init__(self, fail_on_call=None):
    self.batch_sizes = []
    self.fail_on_call = fail_on_call
    self.lock = threading.Lock()

  def __call__(self, image, seed):
    with self.lock:
      self.batch_sizes.append(image.shape[0])
      if self.fail_on_call is not None and len(self.batch_sizes) >= self.fail_on_call:
        raise RuntimeError('model exploded')
    assert image.shape[-1] == 1 and seed.shape[-1] == 1 and image.ndim == 5
    return seed + image


def _client(ex, cid, n_requests, value, results, errors):
  try:
    for i in range(n_requests):
      out = ex.predict(cid, _fov(value), _fov(i))
      results.append((value, i, float(out[0, 0, 0])))
  except executor.ExecutorError as e:
    errors.append(e)
  finally:
    ex.finish_client(cid)


def _run_clients(ex, counts):
  results, errors = [], []
  # All clients register before any asks, so that batches are predictable.
  ids = [ex.start_client() for _ in counts]
  threads = [threading.Thread(target=_client,
                              args=(ex, cid, n, 100 * (k + 1), results, errors))
             for k, (cid, n) in enumerate(zip(ids, counts))]
  for t in threads:
    t.start()
  for t in threads:
    t.join(timeout=30)
    assert not t.is_alive(), 'a client hung'
  return results, errors


def test_batch_executor_batches_clients_and_routes_results():
  fn = _Recorder()
  ex = executor.BatchExecutor(fn, batch_size=2)
  ex.start()
  try:
    results, errors = _run_clients(ex, [5, 5, 3])
  finally:
    ex.stop()
  assert not errors
  assert len(results) == 13
  # Every result is the client's own seed plus its own image.
  assert all(out == value + i for value, i, out in results)
  assert max(fn.batch_sizes) == 2 and sum(fn.batch_sizes) == 13
  # While two or more clients are active, every call is a full batch.
  assert fn.batch_sizes.count(2) >= 5


def test_batch_executor_failure_reaches_every_client():
  fn = _Recorder(fail_on_call=3)
  ex = executor.BatchExecutor(fn, batch_size=2)
  ex.start()
  try:
    results, errors = _run_clients(ex, [10, 10, 10])
    assert len(errors) == 3
    assert any('model exploded' in str(e.__cause__) for e in errors)
    # Later requests fail at once instead of hanging.
    with pytest.raises(executor.ExecutorError):
      ex.predict(ex.start_client(), _fov(0), _fov(0))
  finally:
    ex.stop()
  assert len(results) < 30


def test_batch_executor_stopped_or_not_started():
  ex = executor.BatchExecutor(_Recorder(), batch_size=1)
  with pytest.raises(executor.ExecutorError, match='not running'):
    ex.predict(ex.start_client(), _fov(0), _fov(0))
  with pytest.raises(ValueError):
    executor.BatchExecutor(_Recorder(), batch_size=0)


def test_direct_executor():
  fn = _Recorder()
  ex = executor.DirectExecutor(fn)
  a, b = ex.start_client(), ex.start_client()
  assert a != b
  out = ex.predict(a, _fov(2.0), _fov(3.0))
  assert out.shape == (3, 4, 5) and np.all(out == 5.0)
  assert fn.batch_sizes == [1]
  assert ex.counters['executor-inference-calls'].value == 1
