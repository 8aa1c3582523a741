"""The repository's commands: pyproject's [project.scripts] and the root script shims."""

from __future__ import annotations

import glob
import os
import re

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def console_scripts() -> dict[str, str]:
  """The [project.scripts] table of pyproject.toml (read by hand: tomllib needs Python 3.11)."""
  with open(os.path.join(REPO_ROOT, 'pyproject.toml')) as f:
    table = f.read().split('[project.scripts]\n', 1)[1].split('\n[', 1)[0]
  return dict(re.findall(r'^([\w-]+) = "([^"]+)"$', table, re.M))


def root_scripts() -> list[str]:
  """The names (without .py) of the script shims at the repository root."""
  return sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO_ROOT, '*.py')))
