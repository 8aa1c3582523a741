"""Helpers for the bad-input tests: run a script, check it failed cleanly, keep a census.

A clean failure is: non-zero exit, no Python traceback, an error line naming
the bad value, nothing left at the output paths (no temporaries either) and
every protected file byte-for-byte unchanged. With FFN_BAD_INPUTS_CENSUS set
to a path, every checked case appends one JSON line there (see
bench/bad_inputs_census.py): its class of input and what went wrong, if
anything: `silent` (exit 0 on bad input: a wrong or empty result), `data_loss`
(a protected file changed), `hang` (the script ran past its time limit),
`traceback`, `unclear` (the output does not name the bad value), `half_written`.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Iterable, Iterator, Optional, Sequence

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


# Exit status given to a script that ran past its time limit (a hang).
HUNG = -999


def run_script(script: str, *args: str, timeout: float = 240,
               env: Optional[dict] = None) -> subprocess.CompletedProcess:
  """Runs `python <script> args...` from the repository root, capturing text output.

  A run past `timeout` is killed and returned with returncode HUNG.
  """
  full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=str(REPO_ROOT))
  full_env.update(env or {})
  command = [sys.executable, *script.split(), *args]
  try:
    return subprocess.run(command, cwd=REPO_ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
  except subprocess.TimeoutExpired as e:
    as_text = lambda b: b.decode(errors='replace') if isinstance(b, bytes) else (b or '')
    return subprocess.CompletedProcess(command, HUNG, as_text(e.stdout), as_text(e.stderr))


def digest(path) -> str:
  """A content hash of a file, or of every file under a directory."""
  path = pathlib.Path(path)
  h = hashlib.sha256()
  files = sorted(p for p in path.rglob('*') if p.is_file()) if path.is_dir() else [path]
  for f in files:
    h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
    h.update(f.read_bytes())
  return h.hexdigest()


def leftovers(paths: Iterable) -> list[str]:
  """Outputs that exist, and temporaries (`.<name>.*.tmp*`) beside any of them."""
  found = []
  for path in paths:
    path = str(path)
    if os.path.lexists(path):
      found.append(path)
    pattern = os.path.join(glob.escape(os.path.dirname(path) or '.'),
                           '.' + glob.escape(os.path.basename(path)) + '.*.tmp*')
    found.extend(glob.glob(pattern))
  return found


def _record(case: str, klass: str, **outcome) -> None:
  census = os.environ.get('FFN_BAD_INPUTS_CENSUS')
  if census:
    with open(census, 'a', encoding='utf-8') as f:
      f.write(json.dumps(dict(case=case, klass=klass, **outcome)) + '\n')


# The longest error output a clean failure may print (long values are cut).
MAX_ERROR_CHARS = 3000


def expect_clean_failure(case: str, proc: subprocess.CompletedProcess, names: Sequence[str],
                         outputs: Iterable = (), untouched: Optional[dict] = None,
                         exit_code: Optional[int] = None, klass: str = 'other') -> str:
  """Asserts (and records, under `klass`) a clean failure; returns the combined output."""
  text = proc.stdout + proc.stderr
  traceback = 'Traceback' in text
  left = leftovers(outputs)
  changed = [p for p, d in (untouched or {}).items()
             if not os.path.exists(p) or digest(p) != d]
  named = all(n in text for n in names)
  hang = proc.returncode == HUNG
  silent = proc.returncode == 0 and exit_code != 0
  code_ok = proc.returncode not in (0, HUNG) if exit_code is None else proc.returncode == exit_code
  error_lines = [line for line in proc.stderr.splitlines() if ': error: ' in line]
  short = all(len(line) <= MAX_ERROR_CHARS for line in error_lines)
  _record(case, klass,
          clean=bool(code_ok and not traceback and named and not left and not changed and short),
          silent=silent, hang=hang, traceback=traceback, data_loss=bool(changed),
          unclear=not named or not short, half_written=bool(left), exit=proc.returncode)
  tail = text[-2500:]
  assert not hang, f'{case}: still running after its time limit (a hang)\n{tail}'
  assert code_ok, f'{case}: exit {proc.returncode}\n{tail}'
  assert not traceback, f'{case}: traceback in output\n{tail}'
  assert named, f'{case}: output does not name {names}\n{tail}'
  assert short, f'{case}: an error line of over {MAX_ERROR_CHARS} characters'
  assert not left, f'{case}: left behind {left}'
  assert not changed, f'{case}: changed {changed}'
  return text


def record_success(case: str, klass: str = 'other', clean: bool = True) -> None:
  """Records a case whose right answer is success (e.g. a dataset added to a shared file)."""
  _record(case, klass, clean=clean, silent=False, hang=False, traceback=False, data_loss=False,
          unclear=False, half_written=False, exit=0, kind='success')


@contextlib.contextmanager
def expect_success(case: str, klass: str = 'other') -> Iterator[None]:
  """Records the case whose right answer is success as correct unless the block fails."""
  try:
    yield
  except BaseException:
    record_success(case, klass, clean=False)
    raise
  record_success(case, klass)


@contextlib.contextmanager
def tmpfs(path: pathlib.Path, size: str = '256k', read_only: bool = False) -> Iterator[pathlib.Path]:
  """Mounts a small tmpfs at `path` (root only); skips the test where mounting is impossible."""
  path.mkdir(parents=True, exist_ok=True)
  options = f'size={size}' + (',ro' if read_only else '')
  if shutil.which('mount') is None:
    pytest.skip('no mount command: cannot make a small or read-only file system')
  proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', str(path)],
                        capture_output=True, text=True)
  if proc.returncode != 0:
    pytest.skip('cannot mount a tmpfs here (needs root; tests run as root ignore chmod, so a '
                f'read-only directory cannot be made otherwise): {proc.stderr.strip()}')
  try:
    yield path
  finally:
    subprocess.run(['umount', '-l', str(path)], capture_output=True)


def fill(directory: pathlib.Path) -> None:
  """Fills the file system of `directory` so that the next write fails with ENOSPC."""
  block = b'\0' * 4096
  with open(directory / 'filler', 'wb', buffering=0) as f:
    try:
      while True:
        f.write(block)
    except OSError:
      pass
