"""Label operations, kept importable here for upstream users; they live in ffn.utils.labels."""

from ffn.utils.labels import *  # pylint: disable=wildcard-import,unused-wildcard-import
