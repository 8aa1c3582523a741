#!/usr/bin/env python
"""Runs FFN inference within one bounding box of a volume.

The command lives in ffn.scripts.run_inference (installed as `ffn-run-inference`).
"""

from ffn.scripts.run_inference import run

if __name__ == '__main__':
  run()
