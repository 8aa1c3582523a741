"""A blockwise worker started by a launch template: `python -m ffn.blockwise.worker ...`.

The scheduler fills `{command}` of --worker_command with this module's command
line; the worker connects back to the scheduler and takes blocks until none are left.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Optional, Sequence

from ffn.blockwise import plan as plan_lib
from ffn.blockwise import workers


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--plan', required=True, help='plan.json of the run')
  parser.add_argument('--task', required=True, choices=plan_lib.TASKS)
  parser.add_argument('--context', required=True, help="the scheduler's worker context")
  parser.add_argument('--cwd', help="the scheduler's working directory")
  parser.add_argument('--threads', type=int, help="CPU threads of the worker's engine "
                      '(default: every CPU it may use)')
  parser.add_argument('--subvolumes', type=int, default=1,
                      help='blocks an inference worker grows at once through one engine')
  args = parser.parse_args(argv)
  if args.cwd:
    os.chdir(args.cwd)
  logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
  if args.threads is not None and args.threads < 1:
    parser.error(f'--threads {args.threads} must be at least 1')
  if args.subvolumes < 1:
    parser.error(f'--subvolumes {args.subvolumes} must be at least 1')
  workers.run_worker(args.plan, args.task, args.context, args.threads,
                     args.subvolumes if args.task == 'inference' else 1)


if __name__ == '__main__':
  main()
