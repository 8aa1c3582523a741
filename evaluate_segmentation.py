#!/usr/bin/env python
"""Scores a segmentation against groundtruth: VI split/merge, adapted Rand error, worst offenders.

The command lives in ffn.scripts.evaluate_segmentation (installed as `ffn-evaluate-segmentation`).
"""

from ffn.scripts.evaluate_segmentation import run

if __name__ == '__main__':
  run()
