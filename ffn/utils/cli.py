"""Helpers shared by the command-line scripts: running main with --help, one-line errors, flags."""

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

from absl import app
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


def _main_module_key() -> str:
  """The name absl files the main module's key flags under (sys.argv[0])."""
  return sys.argv[0]


def _adopt_package_key_flags() -> None:
  """Makes every flag this package defines a key flag of the main module, so --help lists it.

  Only the scripts define flags, each in a process of its own, so these are exactly the
  running script's flags and the shared ones (result, blockwise) it defined.
  """
  for module_name, defined in flags.FLAGS.flags_by_module_dict().items():
    if module_name == 'ffn' or module_name.startswith('ffn.'):
      for flag in defined:
        flags.FLAGS.register_key_flag_for_module(_main_module_key(), flag)


def _usage(script_doc: str, arguments: str) -> str:
  """The usage line, the script's docstring and its key flags with their defaults."""
  usage = ' '.join(filter(None, (_script_name(), '[flags]', arguments)))
  key_flags = flags.FLAGS.main_module_help()
  return (f'usage: {usage}\n\n{script_doc.strip()}\n\nflags:\n{key_flags}\n\n'
          'Try --helpfull to get a list of all flags.\n')


class _HelpFlag(flags.BooleanFlag):
  """--help / --helpshort / -?: prints the usage and the script's flags to stdout, exits 0."""

  def __init__(self, name: str, short_name: Optional[str], text: Callable[[], str]):
    super().__init__(name, False, 'show this help', short_name=short_name,
                     allow_hide_cpp=True)
    self._text = text

  def parse(self, argument) -> None:
    if self._parse(argument):
      sys.stdout.write(self._text())
      sys.stdout.flush()
      sys.exit(0)


def _replace_help_flags(text: Callable[[], str]) -> None:
  """Swaps absl's --help, --helpshort and --helpfull (which exit 1) for ones that exit 0."""
  app.define_help_flags()
  for name in ('help', '?', 'helpshort', 'helpfull'):
    delattr(flags.FLAGS, name)
  flags.DEFINE_flag(_HelpFlag('help', '?', text))
  flags.DEFINE_flag(_HelpFlag('helpshort', None, text))
  flags.DEFINE_flag(_HelpFlag('helpfull', None, lambda: flags.FLAGS.get_help() + '\n'))


def run(main: Callable[[Sequence[str]], object], arguments: str = '') -> None:
  """Runs a script's `main` with absl: --help lists the script's flags and exits 0.

  Every script needs some flag or argument, so a call with none prints the same help to
  stderr and exits 1. `arguments` names the positional arguments in the usage line.
  """
  script_doc = sys.modules[main.__module__].__doc__ or ''
  _adopt_package_key_flags()
  _replace_help_flags(lambda: _usage(script_doc, arguments))
  if len(sys.argv) < 2:
    sys.stderr.write(_usage(script_doc, arguments))
    print(f'{_script_name()}: error: no arguments given; see the usage above',
          file=sys.stderr)
    sys.exit(1)
  app.run(main)
