"""Every script and ffn-* command: --help lists the flags it uses with defaults and exits 0;
no arguments at all prints that usage and exits non-zero."""

from __future__ import annotations

import concurrent.futures
import os
import re
import subprocess
import sys

import entry_points
import pytest

REPO_ROOT = entry_points.REPO_ROOT
SCRIPTS_DIR = os.path.join(REPO_ROOT, 'ffn', 'scripts')
# The shared flag modules and the call that defines their flags in a script.
SHARED_FLAGS = {'result_flags.py': 'result_flags.define_result_flags(',
                'blockwise_flags.py': 'blockwise_flags.define_flags(',
                'validation_flags.py': 'validation_flags.define_flags('}


def _command_line(entry: str, args: list[str]) -> list[str]:
  """How a user runs `entry`: a root shim (name.py) or an installed ffn-* command."""
  if entry.endswith('.py'):
    return [sys.executable, entry, *args]
  module_name, _, attr = entry_points.console_scripts()[entry].partition(':')
  # What the installed console script does, with this checkout's package.
  code = (f'import sys; sys.argv[0] = {entry!r}; from {module_name} import {attr}; '
          f'sys.exit({attr}())')
  return [sys.executable, '-c', code, *args]


def _entries() -> list[str]:
  return sorted(entry_points.console_scripts()) + [f'{n}.py' for n in entry_points.root_scripts()]


def _module_file(entry: str) -> str:
  if entry.endswith('.py'):
    return os.path.join(SCRIPTS_DIR, entry)
  module_name = entry_points.console_scripts()[entry].partition(':')[0]
  return os.path.join(REPO_ROOT, *module_name.split('.')) + '.py'


def _defined_flags(path: str) -> dict[str, bool]:
  """Flag name -> whether it has a default, for the flags DEFINEd in the file at `path`."""
  with open(path) as f:
    found = re.findall(r"DEFINE_\w+\(\s*'(\w+)',\s*([^,]+),", f.read())
  defaults: dict[str, bool] = {}
  for name, default in found:  # A flag defined two ways has a default if both give one.
    defaults[name] = defaults.get(name, True) and default.strip() != 'None'
  return defaults


def _expected_flags(entry: str) -> dict[str, bool]:
  """The flags the script defines itself and those of the shared modules it calls on."""
  path = _module_file(entry)
  with open(path) as f:
    text = f.read()
  expected = _defined_flags(path)
  for shared, call in SHARED_FLAGS.items():
    if call in text:
      expected.update(_defined_flags(os.path.join(SCRIPTS_DIR, shared)))
  return expected


def _listed_flags(text: str) -> dict[str, str]:
  """Flag name -> its help block, as absl lists them."""
  blocks = re.split(r'^  --(?:\[no\])?(\w+):', text, flags=re.M)[1:]
  return dict(zip(blocks[::2], blocks[1::2]))


def _run(entry: str, args: list[str]) -> subprocess.CompletedProcess:
  # As users run them: without TF_CPP_MIN_LOG_LEVEL, so TensorFlow's start-up lines would show.
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  return subprocess.run(_command_line(entry, args), cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=300, check=False, env=dict(env, PYTHONPATH=REPO_ROOT))


@pytest.fixture(scope='module')
def outcomes() -> dict[tuple[str, str], subprocess.CompletedProcess]:
  """(entry, 'help' or 'none') -> the finished process; run in parallel (each import is slow)."""
  cases = [(entry, case) for entry in _entries() for case in ('help', 'none')]
  with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
    futures = {c: pool.submit(_run, c[0], ['--help'] if c[1] == 'help' else []) for c in cases}
    return {c: f.result() for c, f in futures.items()}


def test_every_command_and_shim_is_covered():
  assert len(_entries()) == len(entry_points.console_scripts()) + len(entry_points.root_scripts())
  assert 'ffn-train' in _entries() and 'train.py' in _entries()


def test_shared_flags_are_expected_where_used():
  assert 'num_workers' in _expected_flags('ffn-run-blockwise-inference')
  assert 'segmentation_dir' in _expected_flags('ffn-export-segmentation')
  assert 'num_workers' not in _expected_flags('ffn-export-segmentation')


@pytest.mark.parametrize('entry', _entries())
def test_help_lists_the_flags_with_defaults_and_exits_0(outcomes, entry):
  proc = outcomes[entry, 'help']
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.startswith(f'usage: {entry} [flags]'), proc.stdout[:200]
  listed = _listed_flags(proc.stdout)
  expected = _expected_flags(entry)
  assert expected, entry
  assert set(expected) <= set(listed), f'{entry} --help misses {sorted(set(expected) - set(listed))}'
  for name in (name for name, has_default in expected.items() if has_default):
    assert '(default: ' in listed[name], (name, listed[name])
  assert 'Traceback' not in proc.stderr


@pytest.mark.parametrize('entry', _entries())
def test_no_arguments_prints_usage_and_fails(outcomes, entry):
  proc = outcomes[entry, 'none']
  assert proc.returncode != 0
  assert proc.stderr.startswith(f'usage: {entry} [flags]'), proc.stderr[:300]
  assert set(_listed_flags(proc.stderr)) >= set(_expected_flags(entry))
  assert proc.stderr.rstrip().endswith(f'{entry}: error: no arguments given; see the usage above')
  assert 'Traceback' not in proc.stderr
  assert proc.stdout == ''


def test_blockwise_help_shows_the_shared_defaults(outcomes):
  listed = _listed_flags(outcomes['ffn-run-blockwise-inference', 'help'].stdout)
  assert "(default: '1')" in listed['num_workers']
  assert "(default: '86400.0')" in listed['block_timeout_secs']
  assert 'inference_request' in listed and 'overlap' in listed


def test_helpfull_exits_0():
  proc = _run('ffn-png-to-h5', ['--helpfull'])
  assert proc.returncode == 0, proc.stderr
  assert 'absl.logging:' in proc.stdout and '--input_dir' in proc.stdout
