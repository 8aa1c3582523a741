"""The environment of a Python child process that must import what this process imports."""

from __future__ import annotations

import os
import sys


def python_environment() -> dict[str, str]:
  """os.environ with PYTHONPATH set to this process's sys.path ('' as the working directory).

  So a child started as `python -m ffn...` imports the same `ffn` (a checkout
  or an installed package) as its parent, whatever its own working directory.
  """
  return dict(os.environ, PYTHONPATH=os.pathsep.join(p or os.getcwd() for p in sys.path))
