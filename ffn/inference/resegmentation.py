"""Upstream's import path `ffn.inference.resegmentation`: the names of `ffn.inference.pipelines.resegmentation`."""

# pylint: disable=wildcard-import,unused-wildcard-import
from ffn.inference.pipelines.resegmentation import *  # noqa: F401,F403
