"""Small helpers shared by the command-line scripts: one-line errors and x,y,z flags."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import signal
import sys
import threading
import zipfile
from typing import Callable, Iterator, Mapping, NoReturn, Optional, Sequence

from absl import flags
from absl import logging

from ffn.utils import checks
from ffn.utils import errors


# Raised where a long job stops at Ctrl-C (its state saved); `guard` exits 130 on it.
Interrupted = errors.Interrupted


def _script_name() -> str:
  """The running script's file name, for error lines."""
  return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else 'ffn'


def fail(message: str) -> NoReturn:
  """Exits with status 1 after one clear error line naming the script (no usage dump)."""
  print(f'{_script_name()}: error: {errors.shorten_line(message)}', file=sys.stderr)
  sys.exit(1)


def no_arguments(argv: Sequence[str]) -> None:
  """Fails naming the positional arguments a script that takes only flags was given."""
  if len(argv) > 1:
    fail(f'unexpected arguments (this script takes only --flags): '
         f'{errors.cut(" ".join(argv[1:]))}')


def parse_triple(values: Sequence[str], name: str, kind: Callable = int,
                 valid: Optional[checks.Range] = None) -> tuple:
  """Parses the x,y,z value of flag --`name` into `kind`s in `valid`, or fails naming the flag."""
  try:
    triple = tuple(kind(v) for v in values)
  except (ValueError, OverflowError):
    triple = ()
  if len(triple) != 3:
    fail(f'--{name} must be three {kind.__name__}s x,y,z, got {errors.shown(",".join(values))}')
  if valid is not None:
    try:
      checks.check_numbers(triple, f'--{name}', valid)
    except errors.FFNError as e:
      fail(str(e))
  return triple


def check_flag_ranges(ranges: Mapping[str, checks.Range]) -> None:
  """Makes absl refuse, before main runs, a value of each named flag outside its range.

  A flag left unset (None) passes; absl's error names the flag and the value.
  """
  for name, valid in ranges.items():
    flags.register_validator(name, lambda value, valid=valid: value is None or value in valid,
                             message=f'expected {valid.describe()}')


@contextlib.contextmanager
def fail_on(*error_types: type) -> Iterator[None]:
  """Turns the listed bad-input errors raised in the block into one logged, printed error line."""
  try:
    yield
  except error_types as e:
    logging.error('%s', errors.shorten_line(str(e)))
    fail(str(e))


# Errors that come from files, flags and the machine rather than from bugs: shown as one
# line. Bad input raises FFNError; OSError covers h5py's format errors and the file system;
# EOFError and BadZipFile are files cut short. A ValueError, KeyError or IndexError from
# anywhere else is a bug and keeps its traceback.
_BOUNDARY_ERRORS = (errors.FFNError, OSError, EOFError, zipfile.BadZipFile, MemoryError)


def describe_error(error: BaseException) -> str:
  """One line naming the path (if any) and the reason of an OS or format error."""
  if isinstance(error, OSError) and not type(error).__module__.startswith('h5py'):
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
      reason = 'no space left on device'
    path = error.filename
    if path is not None and error.filename2 is not None:
      path = f'{path} -> {error.filename2}'
    return f'{path}: {reason}' if path is not None else reason
  if isinstance(error, MemoryError):
    return 'out of memory'
  text = str(error).strip()
  # Some libraries put their own traceback into the message: keep the first line.
  first = text.splitlines()[0] if text else type(error).__name__
  return first if 'Traceback' not in first else type(error).__name__


# TensorStore reports I/O and format errors as a ValueError whose text starts with an absl
# status code; nothing in this package raises one worded so.
_TENSORSTORE_STATUS = re.compile(
    r'^(CANCELLED|UNKNOWN|INVALID_ARGUMENT|DEADLINE_EXCEEDED|NOT_FOUND|ALREADY_EXISTS|'
    r'PERMISSION_DENIED|RESOURCE_EXHAUSTED|FAILED_PRECONDITION|ABORTED|OUT_OF_RANGE|'
    r'UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS|UNAUTHENTICATED): ')


def _is_tensorstore_error(error: BaseException) -> bool:
  """Whether `error` is TensorStore's report of a file or format problem."""
  return type(error) is ValueError and bool(_TENSORSTORE_STATUS.match(str(error)))


def _tensorstore_reason(error: BaseException) -> str:
  """TensorStore's message without the spec it appends."""
  text = str(error).split(' [tensorstore_spec=')[0].strip()
  if "os_error_code='28'" in str(error) or 'No space left on device' in text:
    text += ' (no space left on device)' if 'No space left' not in text else ''
  return text


def _is_tensorflow_error(error: BaseException) -> bool:
  """Whether `error` is a TensorFlow OpError (checked by name: this module never imports TF)."""
  return any(cls.__name__ == 'OpError' and cls.__module__.startswith('tensorflow')
             for cls in type(error).__mro__)


def guard(main: Callable) -> Callable:
  """Wraps a script's main: bad files and flags exit 1 with one line, Ctrl-C exits 130."""

  @functools.wraps(main)
  def guarded(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except KeyboardInterrupt:
      print(f'{_script_name()}: interrupted', file=sys.stderr)
      sys.exit(130)
    except Interrupted as e:
      print(f'{_script_name()}: interrupted; {e}', file=sys.stderr)
      sys.exit(130)
    except _BOUNDARY_ERRORS as e:
      fail(describe_error(e))
    except Exception as e:  # pylint: disable=broad-except
      if _is_tensorstore_error(e):
        fail(_tensorstore_reason(e))
      if not _is_tensorflow_error(e):
        raise
      fail(describe_error(e))

  return guarded


_STOP = threading.Event()


def stop_requested() -> bool:
  """Whether Ctrl-C was pressed inside `deferred_interrupt`."""
  return _STOP.is_set()


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
  """Turns the first Ctrl-C into a flag long jobs check at safe points; the second stops now."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return

  def handler(signum, frame):
    del signum, frame
    if _STOP.is_set():
      raise KeyboardInterrupt
    _STOP.set()
    print('interrupt: saving progress (press Ctrl-C again to stop now)', file=sys.stderr)

  previous = signal.signal(signal.SIGINT, handler)
  _STOP.clear()
  try:
    yield
  finally:
    signal.signal(signal.SIGINT, previous)
    _STOP.clear()
