"""Upstream's import path `ffn.inference.seed`: the names of `ffn.inference.policies.seed`."""

# pylint: disable=wildcard-import,unused-wildcard-import
from ffn.inference.policies.seed import *  # noqa: F401,F403
