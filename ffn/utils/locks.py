"""Lock files naming their owner (host and pid), so two runs never do the same work at once.

A lock left by a process that died on this host is stale and taken over; a
lock of a live process (or of another host, which cannot be checked from here)
stops the second run with a message naming the owner and the lock file.
A lock appears with its owner record already in it (written beside it, then
hard-linked into place), so an empty or unreadable lock file was never a
lock of this code: it is stale and taken over.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import tempfile
import time
from typing import Iterator, Optional

from ffn.utils import errors


class LockError(errors.FFNError):
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
  """The owner record of a lock file, None if it vanished, {} if it holds no record."""
  try:
    with open(path, encoding='utf-8') as f:
      owner = json.load(f)
  except FileNotFoundError:
    return None
  except (OSError, ValueError):
    return {}
  return owner if isinstance(owner, dict) else {}


def _is_stale(owner: dict) -> bool:
  """Whether the lock is no one's: no owner record, or a dead process of this host."""
  if not owner:
    return True
  pid = owner.get('pid')
  return (owner.get('host') == host_name() and isinstance(pid, int) and not pid_alive(pid))


def _create(path: str, record: str) -> bool:
  """Creates the lock file holding `record`, whole or not at all; False if it exists."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=f'.{os.path.basename(path)}.{owner_tag()}.',
                             suffix='.tmp')
  try:
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
      f.write(record)
    os.chmod(tmp, 0o644)
    try:
      os.link(tmp, path)
    except FileExistsError:
      return False
    except OSError as e:
      if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        raise
      return _create_in_place(path, record)  # A file system without hard links.
    return True
  finally:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)


def _create_in_place(path: str, record: str) -> bool:
  """Creates the lock file with O_EXCL and writes `record` into it; False if it exists."""
  try:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
  except FileExistsError:
    return False
  try:
    os.write(fd, record.encode('utf-8'))
  except OSError:
    os.close(fd)
    os.remove(path)
    raise
  os.close(fd)
  return True


def _missing_parents(path: str) -> list[str]:
  """The directories above `path` that do not exist yet, deepest first."""
  missing = []
  directory = os.path.dirname(os.path.abspath(path))
  while directory and not os.path.exists(directory):
    missing.append(directory)
    parent = os.path.dirname(directory)
    if parent == directory:
      break
    directory = parent
  return missing


def acquire(path: str, what: str) -> list[str]:
  """Creates the lock file at `path` for this process, taking over a stale one; LockError if held.

  Returns the directories it created for the lock (deepest first).
  """
  created = _missing_parents(path)
  record = json.dumps({'host': host_name(), 'pid': os.getpid(), 'since': time.time()})
  for _ in range(3):
    os.makedirs(os.path.dirname(os.path.abspath(path)) or '.', exist_ok=True)
    if not _create(path, record):
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
          'finish, or delete the lock file if that process is gone')
    return created
  raise LockError(f'cannot take the lock {path} for {what}: it keeps changing hands')


def release(path: str) -> None:
  """Removes the lock file at `path` if this process owns it."""
  owner = _read_owner(path)
  if owner and owner.get('pid') == os.getpid() and owner.get('host') == host_name():
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)


@contextlib.contextmanager
def hold(path: str, what: str) -> Iterator[None]:
  """Holds the lock file at `path` for the block (see `acquire`).

  Directories made for the lock that are still empty afterwards (the work
  failed before writing anything) are removed with it.
  """
  created = acquire(path, what)
  try:
    yield
  finally:
    release(path)
    for directory in created:
      try:
        os.rmdir(directory)
      except OSError:
        break  # Not empty (results were written), or gone: leave it and its parents.
