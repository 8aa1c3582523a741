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
