"""Upstream's import path `ffn.inference.runner`: the names of `ffn.inference.request.runner`."""

# pylint: disable=wildcard-import,unused-wildcard-import
from ffn.inference.request.runner import *  # noqa: F401,F403
