#!/usr/bin/env python
"""Split consensus of two inference results; see ffn/scripts/run_consensus.py for the flags.

  python run_consensus.py --segmentation1_dir results/fib25/forward \
      --segmentation2_dir results/fib25/reverse \
      --segmentation_output_dir results/fib25/consensus
"""

from ffn.scripts import run_consensus

if __name__ == '__main__':
  run_consensus.run()
