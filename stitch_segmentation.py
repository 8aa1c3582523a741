#!/usr/bin/env python
"""Stitches existing subvolume results of a blockwise grid into one global segmentation.

The command lives in ffn.scripts.stitch_segmentation (installed as `ffn-stitch-segmentation`).
"""

from ffn.scripts.stitch_segmentation import run

if __name__ == '__main__':
  run()
