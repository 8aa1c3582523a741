#!/usr/bin/env python
"""Chooses the checkpoint that segments a validation box best.

The command lives in ffn.scripts.select_checkpoint (installed as `ffn-select-checkpoint`).
"""

from ffn.scripts.select_checkpoint import run

if __name__ == '__main__':
  run()
