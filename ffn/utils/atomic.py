"""Atomic writes: outputs appear complete under their final name, or not at all.

The temporary file sits beside the output as `.<name>.<host>-<pid>.<random>.tmp`;
a later write of the same output removes those whose process died on this
host, so a killed run leaves nothing behind for long. Symlinked outputs are
written through to their target; anything that is not a regular file (a
directory, a device such as /dev/full, a pipe) is refused, never replaced.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import stat
import tempfile
from typing import Iterator

from ffn.utils import errors
from ffn.utils import locks


class OutputPathError(errors.FFNError):
  """An output path names something an atomic write must not replace."""


def _read_umask() -> int:
  """The process umask (set and restored once, at import, before any threads write)."""
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


_UMASK = _read_umask()


def resolve_output(path: str) -> str:
  """The real path to write for `path`: symlinks followed; refuses non-regular files."""
  real = os.path.realpath(os.fspath(path))
  try:
    mode = os.stat(real).st_mode
  except (FileNotFoundError, NotADirectoryError):
    parent = os.path.dirname(real)
    while not os.path.exists(parent) and os.path.dirname(parent) != parent:
      parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
      raise OutputPathError(f'cannot write {path}: {parent} is not a directory') from None
    return real
  if not stat.S_ISREG(mode):
    kind = 'a directory' if stat.S_ISDIR(mode) else 'not a regular file'
    raise OutputPathError(f'output {path} is {kind}; refusing to replace it '
                          '(give the path of a new or regular file)')
  return real


def check_writable_directory(directory: str, what: str) -> None:
  """Raises OutputPathError unless `directory` (or its nearest existing parent) can be written."""
  probe = os.path.abspath(directory)
  while not os.path.exists(probe):
    parent = os.path.dirname(probe)
    if parent == probe:
      break
    probe = parent
  if not os.path.isdir(probe):
    raise OutputPathError(f'cannot write {what} {directory}: {probe} is not a directory')
  if not os.access(probe, os.W_OK | os.X_OK):
    raise OutputPathError(f'cannot write {what} {directory}: {probe} is not writable '
                          '(read-only file system or no permission)')


def check_output(path: str, what: str = 'output') -> str:
  """Checks, before any work, that `path` can be written atomically; returns the real path."""
  real = resolve_output(path)
  check_writable_directory(os.path.dirname(real), what)
  return real


def temporary_prefix(path: str) -> str:
  """The name prefix of temporary files for `path` (without the owner tag)."""
  return '.' + os.path.basename(path) + '.'


def remove_stale_temporaries(path: str) -> list[str]:
  """Removes temporaries of `path` left by dead processes of this host; returns them."""
  directory = os.path.dirname(os.path.abspath(path))
  removed = []
  pattern = os.path.join(glob.escape(directory), glob.escape(temporary_prefix(path)) + '*.tmp*')
  for candidate in glob.glob(pattern):
    tag = os.path.basename(candidate)[len(temporary_prefix(path)):].split('.', 1)[0]
    if locks.tag_is_dead(tag):
      with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(candidate) and not os.path.islink(candidate):
          shutil.rmtree(candidate, ignore_errors=True)
        else:
          os.remove(candidate)
      removed.append(candidate)
  return removed


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = '') -> Iterator[str]:
  """Yields a temporary path beside `path`; renames it to `path` only if the block succeeds.

  `suffix` keeps an extension on the temporary name for writers that need one
  (numpy appends `.npz` to names without it).
  """
  path = resolve_output(path)
  directory = os.path.dirname(path)
  os.makedirs(directory, exist_ok=True)
  remove_stale_temporaries(path)
  fd, tmp = tempfile.mkstemp(dir=directory,
                             prefix=temporary_prefix(path) + locks.owner_tag() + '.',
                             suffix='.tmp' + suffix)
  os.close(fd)
  # mkstemp creates 0600 files; give outputs the usual permissions (0666 less the umask).
  os.chmod(tmp, 0o666 & ~_UMASK)
  try:
    yield tmp
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


@contextlib.contextmanager
def atomic_open(path: str, mode: str = 'wb'):
  """Opens a temporary file for writing; it replaces `path` when the block succeeds."""
  with atomic_path(path) as tmp:
    with open(tmp, mode) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` atomically."""
  with atomic_open(path, 'wb') as f:
    f.write(data)


def atomic_write_text(path: str, text: str) -> None:
  """Writes `text` to `path` atomically."""
  atomic_write_bytes(path, text.encode('utf-8'))


@contextlib.contextmanager
def atomic_directory(path: str, overwrite: bool = False) -> Iterator[str]:
  """Yields a fresh temporary directory that replaces `path` (with `overwrite`) on success."""
  path = os.path.abspath(os.fspath(path))
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  remove_stale_temporaries(path)
  tmp = tempfile.mkdtemp(dir=parent, prefix=temporary_prefix(path) + locks.owner_tag() + '.',
                         suffix='.tmp')
  # mkdtemp makes a private (0700) directory; outputs are meant to be shared like any other.
  os.chmod(tmp, 0o777 & ~_UMASK)
  try:
    yield tmp
    if os.path.lexists(path):
      if not overwrite:
        raise FileExistsError(f'{path} exists; not replacing it')
      old = tmp[:-len('.tmp')] + '.old'
      os.replace(path, old)
      os.replace(tmp, path)
      if os.path.isdir(old):
        shutil.rmtree(old, ignore_errors=True)
      else:
        os.remove(old)
    else:
      os.replace(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
