"""Local alignment, kept importable here for upstream users; it lives in ffn.utils.align."""

from ffn.utils.align import Aligner, Alignment  # pylint: disable=unused-import
