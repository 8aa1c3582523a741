"""Every root script has a console script in pyproject.toml pointing at an importable callable."""

from __future__ import annotations

import os
import subprocess
import sys

import entry_points
import pytest

REPO_ROOT = entry_points.REPO_ROOT
_console_scripts = entry_points.console_scripts
_root_scripts = entry_points.root_scripts


def test_every_root_script_has_a_console_script():
  scripts = _console_scripts()
  for name in _root_scripts():
    command = 'ffn-' + name.replace('_', '-')
    assert command in scripts, f'{name}.py has no console script {command}'
    assert scripts[command] == f'ffn.scripts.{name}:run'


@pytest.mark.parametrize('command', sorted(_console_scripts()))
def test_entry_points_are_importable_callables(command):
  module_name, _, attr = _console_scripts()[command].partition(':')
  code = (f'import importlib; m = importlib.import_module({module_name!r}); '
          f'assert callable(getattr(m, {attr!r}))')
  # A fresh interpreter per module: each defines its own absl flags.
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=False, env=dict(os.environ, PYTHONPATH=REPO_ROOT))
  assert result.returncode == 0, result.stderr


def test_root_scripts_are_shims():
  for name in _root_scripts():
    with open(os.path.join(REPO_ROOT, f'{name}.py')) as f:
      text = f.read()
    assert f'from ffn.scripts.{name} import run' in text
    assert len(text.splitlines()) < 15, f'{name}.py should only call ffn.scripts.{name}'


def test_console_entry_runs_and_fails_cleanly(tmp_path):
  code = ('import sys; sys.argv = ["ffn-compute-partitions", "--input_volume", '
          f'"{tmp_path}/missing.h5:stack", "--output_volume", "{tmp_path}/af.h5:af", '
          '"--thresholds", "0.5", "--lom_radius", "2,2,2"]; '
          'from ffn.scripts.compute_partitions import run; run()')
  result = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True,
                          text=True, check=False, env=dict(os.environ, PYTHONPATH=REPO_ROOT))
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith('ffn-compute-partitions: error:')
  assert 'does not exist' in result.stderr and 'Traceback' not in result.stderr
  assert not os.path.exists(tmp_path / 'af.h5')
