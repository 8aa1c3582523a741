#!/usr/bin/env python
"""Trains an FFN model; flags as upstream's train.py. Resumes from --train_dir automatically.

The command lives in ffn.scripts.train (installed as `ffn-train`).
"""

from ffn.scripts.train import run

if __name__ == '__main__':
  run()
