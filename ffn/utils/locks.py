"""Lock files naming their owner (host and pid), so two runs never do the same work at once.

A lock left by a process that died on this host is stale and taken over; a
lock of a live process (or of another host, which cannot be checked from here)
stops the second run with a message naming the owner and the lock file.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from typing import Iterator, Optional


class LockError(ValueError):
  """The work is locked by another live process."""


def host_name() -> str:
  """This machine's host name."""
  return socket.gethostname() or 'localhost'


def _tag_host() -> str:
  """The host name as it appears in tags (dots would split file names)."""
  return host_name().replace('.', '_')


def owner_tag() -> str:
  """`<host>-<pid>` of this process; temporary names carry it so reruns can find orphans."""
  return f'{_tag_host()}-{os.getpid()}'


def pid_alive(pid: int) -> bool:
  """Whether a process with this pid runs on this host."""
  if pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # It exists, owned by someone else.
  return True


def tag_is_dead(tag: str) -> bool:
  """Whether an owner_tag names a process of this host that no longer runs."""
  host, _, pid = tag.rpartition('-')
  return host == _tag_host() and pid.isdigit() and not pid_alive(int(pid))


def _read_owner(path: str) -> Optional[dict]:
  """The owner record of a lock file, or None if it vanished or is unreadable."""
  try:
    with open(path, encoding='utf-8') as f:
      owner = json.load(f)
    return owner if isinstance(owner, dict) else {}
  except FileNotFoundError:
    return None
  except (OSError, ValueError):
    return {}


def _is_stale(owner: dict) -> bool:
  """Whether the lock's owner is a dead process of this host."""
  pid = owner.get('pid')
  return (owner.get('host') == host_name() and isinstance(pid, int) and not pid_alive(pid))


def acquire(path: str, what: str) -> None:
  """Creates the lock file at `path` for this process, taking over a stale one; LockError if held."""
  os.makedirs(os.path.dirname(os.path.abspath(path)) or '.', exist_ok=True)
  record = json.dumps({'host': host_name(), 'pid': os.getpid(), 'since': time.time()})
  for _ in range(3):
    try:
      fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
      owner = _read_owner(path)
      if owner is None:
        continue  # Released meanwhile: try again.
      if _is_stale(owner):
        with contextlib.suppress(FileNotFoundError):
          os.remove(path)
        continue
      since = owner.get('since')
      when = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since)) if isinstance(
          since, (int, float)) else 'an unknown time'
      raise LockError(
          f'{what} is being worked on by pid {owner.get("pid", "?")} on host '
          f'{owner.get("host", "?")} since {when} (lock file {path}); wait for that run to '
          'finish, or delete the lock file if that process is gone') from None
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
      f.write(record)
    return
  raise LockError(f'cannot take the lock {path} for {what}: it keeps changing hands')


def release(path: str) -> None:
  """Removes the lock file at `path` if this process owns it."""
  owner = _read_owner(path)
  if owner and owner.get('pid') == os.getpid() and owner.get('host') == host_name():
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)


@contextlib.contextmanager
def hold(path: str, what: str) -> Iterator[None]:
  """Holds the lock file at `path` for the block (see `acquire`)."""
  acquire(path, what)
  try:
    yield
  finally:
    release(path)
