#!/usr/bin/env python
"""Agglomerates a segmentation by resegmenting candidate segment pairs.

The command lives in ffn.scripts.run_resegmentation (installed as `ffn-run-resegmentation`).
"""

from ffn.scripts.run_resegmentation import run

if __name__ == '__main__':
  run()
