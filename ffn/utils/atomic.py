"""Atomic writes: outputs appear complete under their final name, or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator


def _read_umask() -> int:
  """The process umask (set and restored once, at import, before any threads write)."""
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = '') -> Iterator[str]:
  """Yields a temporary path beside `path`; renames it to `path` only if the block succeeds.

  `suffix` keeps an extension on the temporary name for writers that need one
  (numpy appends `.npz` to names without it).
  """
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.' + os.path.basename(path) + '.',
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
  tmp = tempfile.mkdtemp(dir=parent, prefix='.' + os.path.basename(path) + '.', suffix='.tmp')
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
