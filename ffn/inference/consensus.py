"""Upstream's import path `ffn.inference.consensus`: the names of `ffn.inference.pipelines.consensus`."""

# pylint: disable=wildcard-import,unused-wildcard-import
from ffn.inference.pipelines.consensus import *  # noqa: F401,F403
