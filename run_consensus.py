#!/usr/bin/env python
"""Writes the split consensus of two inference results of the same subvolumes.

The command lives in ffn.scripts.run_consensus (installed as `ffn-run-consensus`).
"""

from ffn.scripts.run_consensus import run

if __name__ == '__main__':
  run()
