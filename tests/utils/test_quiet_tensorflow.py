"""TensorFlow's start-up lines stay out of the log unless the user sets TF_CPP_MIN_LOG_LEVEL."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ffn.utils import quiet_tensorflow

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BANNER = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    b'I0000 00:00:1796633029.891418    7460 port.cc:153] oneDNN custom operations are on. '
    b'You may see slightly different numerical results due to floating-point round-off '
    b'errors from different computation orders. To turn them off, set the environment '
    b'variable `TF_ENABLE_ONEDNN_OPTS=0`.\n']


def test_banner_lines_are_dropped_and_the_rest_kept(capfd):
  with quiet_tensorflow.dropping_banner_lines():
    os.write(2, BANNER[0] + b'a real warning\n' + BANNER[1] + b'another line\n')
  assert capfd.readouterr().err == 'a real warning\nanother line\n'


def test_what_was_written_is_kept_when_the_block_raises(capfd):
  with pytest.raises(RuntimeError):
    with quiet_tensorflow.dropping_banner_lines():
      os.write(2, b'why it failed\n')
      raise RuntimeError('import failed')
  assert capfd.readouterr().err == 'why it failed\n'


def _python(code: str, **env) -> subprocess.CompletedProcess:
  environ = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                        timeout=300, check=False,
                        env=dict(environ, PYTHONPATH=REPO_ROOT, **env))


def test_importing_tensorflow_after_ffn_prints_nothing():
  proc = _python('import os, sys; import ffn; import tensorflow as tf; '
                 'tf.constant(1.0) + 1.0; '
                 'print(os.environ["TF_CPP_MIN_LOG_LEVEL"], file=sys.stderr)')
  assert proc.returncode == 0, proc.stderr
  assert proc.stderr == '2\n'


def test_the_users_own_level_wins():
  proc = _python('import os, sys; import ffn; from ffn.utils import quiet_tensorflow as q; '
                 'print(os.environ["TF_CPP_MIN_LOG_LEVEL"], '
                 'any(isinstance(f, q._FirstImport) for f in sys.meta_path))',
                 TF_CPP_MIN_LOG_LEVEL='0')
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout == '0 False\n'
