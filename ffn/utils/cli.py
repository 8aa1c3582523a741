"""Small helpers shared by the command-line scripts: one-line errors and x,y,z flags."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Iterator, NoReturn, Sequence

from absl import logging


def fail(message: str) -> NoReturn:
  """Exits with status 1 after one clear error line naming the script (no usage dump)."""
  script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else 'ffn'
  print(f'{script}: error: {message}', file=sys.stderr)
  sys.exit(1)


def parse_triple(values: Sequence[str], name: str, kind: Callable = int) -> tuple:
  """Parses the x,y,z value of flag --`name` into `kind`s, or fails naming the flag."""
  try:
    triple = tuple(kind(v) for v in values)
  except ValueError:
    triple = ()
  if len(triple) != 3:
    fail(f'--{name} must be three {kind.__name__}s x,y,z, got {",".join(values)!r}')
  return triple


@contextlib.contextmanager
def fail_on(*errors: type) -> Iterator[None]:
  """Turns the listed bad-input errors raised in the block into one logged, printed error line."""
  try:
    yield
  except errors as e:
    logging.error('%s', e)
    fail(str(e))

