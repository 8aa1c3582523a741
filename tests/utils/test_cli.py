"""cli.guard: boundary errors as one line with exit 1, Ctrl-C as 130, bugs keep their traceback."""

from __future__ import annotations

import errno

import pytest

from ffn.utils import cli
from ffn.utils import errors


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


def test_bad_input_keeps_its_first_line(capsys):
  code, err = _exit_of(errors.FFNError('bad thing\nTraceback (most recent call last):\n  x'),
                       capsys)
  assert code == 1 and 'bad thing' in err and 'Traceback' not in err


def test_tensorstore_status_is_one_line(capsys):
  code, err = _exit_of(ValueError('RESOURCE_EXHAUSTED: Error writing local file "/o.zarr/.zarray"'
                                  ": No space left on device [os_error_code='28'] "
                                  '[tensorstore_spec=\'{"driver": "zarr"}\']'), capsys)
  assert code == 1 and 'No space left on device' in err and 'tensorstore_spec' not in err


def test_ctrl_c_exits_130(capsys):
  code, err = _exit_of(KeyboardInterrupt(), capsys)
  assert code == 130 and 'interrupted' in err
  code, err = _exit_of(cli.Interrupted('progress saved to x.cpoint'), capsys)
  assert code == 130 and 'x.cpoint' in err


@pytest.mark.parametrize('bug', [KeyError('a bug'), ValueError('a bug'), IndexError('a bug'),
                                 NotImplementedError('a bug')])
def test_bugs_are_not_hidden(bug):
  def main(argv):
    del argv
    raise bug
  with pytest.raises(type(bug)):
    cli.guard(main)([])
