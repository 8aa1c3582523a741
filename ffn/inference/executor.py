"""Upstream's import path `ffn.inference.executor`: the names of `ffn.inference.engines.executor`."""

# pylint: disable=wildcard-import,unused-wildcard-import
from ffn.inference.engines.executor import *  # noqa: F401,F403
