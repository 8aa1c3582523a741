#!/usr/bin/env python
"""Computes a partition map (local object-mask fraction classes) of a label volume.

The command lives in ffn.scripts.compute_partitions (installed as `ffn-compute-partitions`).
"""

from ffn.scripts.compute_partitions import run

if __name__ == '__main__':
  run()
