"""The base class of every error this package raises on bad input, and how values appear in one."""

from __future__ import annotations

import re
from typing import Any

# Values longer than this are cut in error lines, with their length given.
MAX_SHOWN_CHARS = 200


class FFNError(ValueError):
  """Bad input (a flag, a file, a proto field): the message names the value and what was expected.

  Every error this package raises on bad input is one; the scripts show it as
  one line. Any other exception is a bug and keeps its traceback.
  """


class UnsupportedError(FFNError, NotImplementedError):
  """A setting (a request field, a volume kind) that this port cannot honour."""


class Interrupted(Exception):
  """The user asked the program to stop (Ctrl-C) and its state was saved; exit status 130."""


def cut(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
  """`text`, or its head and tail around '...[N characters]...' when longer than `limit`."""
  if len(text) <= limit:
    return text
  head, tail = limit * 3 // 5, limit // 5  # Where a value is told apart: its start, then its end.
  return f'{text[:head]}...[{len(text):,} characters]...{text[-tail:]}'


def shown(value: Any) -> str:
  """The repr of `value` for an error line, cut when long."""
  return cut(repr(value))


# A run of characters without a line break or space that no message needs whole.
_LONG_RUN = re.compile(r'\S{%d,}' % (MAX_SHOWN_CHARS + 1))
# Characters of one line beyond which the line is cut whatever it holds.
MAX_LINE_CHARS = 2000


def shorten_line(message: str) -> str:
  """An error message with every long unbroken run cut (see `cut`) and at most MAX_LINE_CHARS."""
  message = _LONG_RUN.sub(lambda m: cut(m.group(0)), message)
  return cut(message, MAX_LINE_CHARS) if len(message) > MAX_LINE_CHARS else message
