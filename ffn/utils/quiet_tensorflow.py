"""Keeps TensorFlow's start-up lines out of the log, unless the user sets TF_CPP_MIN_LOG_LEVEL."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
from typing import Iterator

# What TensorFlow's C++ libraries print while they load: they log before TF_CPP_MIN_LOG_LEVEL
# takes effect (one notice and one oneDNN line per library), so that setting alone leaves them.
_BANNER = re.compile(
    r'(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR'
    r'|I\d{4} \S+\s+\d+ port\.cc:\d+\] oneDNN custom operations are on\..*)')


def quiet_startup() -> None:
  """Sets TF_CPP_MIN_LOG_LEVEL=2 and drops the loading lines of the first TensorFlow import.

  Does nothing where the user has set TF_CPP_MIN_LOG_LEVEL: they then see what TF prints.
  """
  if 'TF_CPP_MIN_LOG_LEVEL' in os.environ:
    return
  os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'  # TF's own INFO and WARNING lines.
  if 'tensorflow' not in sys.modules:
    sys.meta_path.insert(0, _FirstImport())


@contextlib.contextmanager
def dropping_banner_lines() -> Iterator[None]:
  """Passes on what the process writes to its stderr (fd 2) in the block, less _BANNER lines."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      kept = [line for line in captured.read().splitlines(keepends=True)
              if not _BANNER.fullmatch(line.rstrip(b'\r\n').decode('utf-8', 'replace'))]
      if kept:
        os.write(2, b''.join(kept))


class _FirstImport(importlib.abc.MetaPathFinder):
  """Finds `tensorflow` once, with a loader that runs its import inside dropping_banner_lines."""

  def find_spec(self, name, path=None, target=None):
    del path, target
    if name != 'tensorflow':
      return None
    sys.meta_path.remove(self)
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.loader is not None:
      spec.loader = _QuietLoader(spec.loader)
    return spec


class _QuietLoader(importlib.abc.Loader):
  """Another loader's import, run inside dropping_banner_lines."""

  def __init__(self, loader):
    self._loader = loader

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module) -> None:
    module.__loader__ = self._loader
    with dropping_banner_lines():
      self._loader.exec_module(module)
