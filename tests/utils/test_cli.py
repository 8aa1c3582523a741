"""cli.guard: boundary errors as one line with exit 1, Ctrl-C as 130, bugs keep their traceback."""

from __future__ import annotations

import errno

import pytest

from ffn.utils import cli


def _exit_of(error, capsys):
  def main(argv):
    del argv
    raise error
  with pytest.raises(SystemExit) as info:
    cli.guard(main)([])
  return info.value.code, capsys.readouterr().err


def test_os_error_names_path_and_reason(capsys):
  code, err = _exit_of(OSError(errno.ENOSPC, 'No space left', '/data/out.h5'), capsys)
  assert code == 1
  assert err.strip().endswith('error: /data/out.h5: no space left on device')
  assert len(err.strip().splitlines()) == 1


def test_value_error_keeps_its_first_line(capsys):
  code, err = _exit_of(ValueError('bad thing\nTraceback (most recent call last):\n  x'), capsys)
  assert code == 1 and 'bad thing' in err and 'Traceback' not in err


def test_ctrl_c_exits_130(capsys):
  code, err = _exit_of(KeyboardInterrupt(), capsys)
  assert code == 130 and 'interrupted' in err
  code, err = _exit_of(cli.Interrupted('progress saved to x.cpoint'), capsys)
  assert code == 130 and 'x.cpoint' in err


def test_bugs_are_not_hidden():
  def main(argv):
    del argv
    raise KeyError('a bug')
  with pytest.raises(KeyError):
    cli.guard(main)([])
