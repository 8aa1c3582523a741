"""Lock files: a live owner stops a second run, a dead owner's lock is taken over."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ffn.utils import locks


def _dead_pid() -> int:
  proc = subprocess.Popen([sys.executable, '-c', 'pass'])
  proc.wait()
  return proc.pid


def test_hold_creates_and_removes(tmp_path):
  lock = tmp_path / 'sub' / 'x.lock'
  with locks.hold(str(lock), 'the box'):
    owner = json.loads(lock.read_text())
    assert owner['pid'] == os.getpid() and owner['host'] == locks.host_name()
  assert not lock.exists()


def test_live_owner_refuses_with_its_pid_and_host(tmp_path):
  lock = tmp_path / 'x.lock'
  holder = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])
  try:
    lock.write_text(json.dumps({'host': locks.host_name(), 'pid': holder.pid, 'since': 0}))
    with pytest.raises(locks.LockError, match=f'pid {holder.pid} on host'):
      locks.acquire(str(lock), 'the box')
  finally:
    holder.kill()
    holder.wait()
  assert json.loads(lock.read_text())['pid'] == holder.pid


def test_dead_owner_on_this_host_is_taken_over(tmp_path):
  lock = tmp_path / 'x.lock'
  lock.write_text(json.dumps({'host': locks.host_name(), 'pid': _dead_pid(), 'since': 0}))
  with locks.hold(str(lock), 'the box'):
    assert json.loads(lock.read_text())['pid'] == os.getpid()


def test_owner_on_another_host_is_not_taken_over(tmp_path):
  lock = tmp_path / 'x.lock'
  lock.write_text(json.dumps({'host': 'elsewhere', 'pid': _dead_pid(), 'since': 0}))
  with pytest.raises(locks.LockError, match='elsewhere'):
    locks.acquire(str(lock), 'the box')


def test_release_leaves_other_owners_lock(tmp_path):
  lock = tmp_path / 'x.lock'
  lock.write_text(json.dumps({'host': 'elsewhere', 'pid': 1}))
  locks.release(str(lock))
  assert lock.exists()


@pytest.mark.parametrize('content', [b'', b'{"host": "h", "pi', b'\x00\xff', b'[1, 2]'])
def test_lock_without_an_owner_record_is_stale(tmp_path, content):
  # An empty lock was once left by a disk that filled while the lock was written.
  path = tmp_path / 'x.lock'
  path.write_bytes(content)
  with locks.hold(str(path), 'the work'):
    assert json.loads(path.read_text())['pid'] == os.getpid()
  assert not path.exists()


def test_lock_appears_whole(tmp_path, monkeypatch):
  # The record is written beside the lock and linked into place: a failed write leaves no lock.
  path = tmp_path / 'x.lock'
  def no_space(*args, **kwargs):
    raise OSError(28, 'No space left on device')
  monkeypatch.setattr(os, 'link', no_space)
  with pytest.raises(OSError, match='No space'):
    locks.acquire(str(path), 'the work')
  assert os.listdir(tmp_path) == []


def test_directories_made_for_a_lock_go_when_left_empty(tmp_path):
  path = tmp_path / 'a' / 'b' / 'x.lock'
  with pytest.raises(RuntimeError):
    with locks.hold(str(path), 'the work'):
      raise RuntimeError('the work failed before writing anything')
  assert os.listdir(tmp_path) == []
  with locks.hold(str(path), 'the work'):
    (tmp_path / 'a' / 'b' / 'result').write_text('done')
  assert sorted(os.listdir(tmp_path / 'a' / 'b')) == ['result']
