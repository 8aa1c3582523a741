#!/usr/bin/env python
"""Agglomeration by resegmentation of segment pairs; see ffn/scripts/run_resegmentation.py.

  python run_resegmentation.py --resegmentation_request "$(cat reseg.pbtxt)" \
      --segmentation results/fib25/consensus.h5:segmentation
"""

from ffn.scripts import run_resegmentation

if __name__ == '__main__':
  run_resegmentation.run()
