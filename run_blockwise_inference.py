#!/usr/bin/env python
"""Segments a large region as overlapping subvolumes on daisy workers, stitched into one volume.

The command lives in ffn.scripts.run_blockwise_inference (installed as `ffn-run-blockwise-inference`).
"""

from ffn.scripts.run_blockwise_inference import run

if __name__ == '__main__':
  run()
