"""Upstream's import path `ffn.inference.movement`: the names of `ffn.inference.policies.movement`."""

# pylint: disable=wildcard-import,unused-wildcard-import
from ffn.inference.policies.movement import *  # noqa: F401,F403
