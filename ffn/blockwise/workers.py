"""Blockwise workers: the work of each task on one block, and workers started by a template.

A worker takes block after block from the scheduler. An inference worker
builds the model once and keeps it. A block that raises is marked failed (the
scheduler retries it) and its error is kept, one line per attempt, in the work
directory's `failures/`, for the final report; the worker goes on.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import time
from typing import Optional

import daisy.v2 as daisy

from ffn.blockwise import plan as plan_lib
from ffn.blockwise import stitching

# ----------------------------------------------------------------------------
# Failure records: one file per failing block, its attempts one line each.


def failure_dir(plan: plan_lib.BlockwisePlan) -> str:
  """Where the failure records of a run go."""
  return os.path.join(plan.work_dir, 'failures')


def _failure_path(plan: plan_lib.BlockwisePlan, task: str, ordinal: int) -> str:
  """The failure record of one block of one task."""
  return os.path.join(failure_dir(plan), f'{task}-{ordinal}.txt')


def _record_failure(plan: plan_lib.BlockwisePlan, task: str, ordinal: int, name: str,
                    error: BaseException) -> None:
  """Appends one failed attempt to the block's record."""
  os.makedirs(failure_dir(plan), exist_ok=True)
  with open(_failure_path(plan, task, ordinal), 'a') as f:
    f.write(f'{task} {name}: {type(error).__name__}: {error}\n')


def read_failures(plan: plan_lib.BlockwisePlan) -> list[str]:
  """'task block: error (n attempts)' for every block whose last attempt failed."""
  reports = []
  if not os.path.isdir(failure_dir(plan)):
    return reports
  for entry in sorted(os.listdir(failure_dir(plan))):
    with open(os.path.join(failure_dir(plan), entry)) as f:
      attempts = [line.rstrip('\n') for line in f if line.strip()]
    if attempts:
      reports.append(f'{attempts[-1]} ({len(attempts)} attempts)')
  return reports


# ----------------------------------------------------------------------------
# Workers.


class BlockFunction:
  """One task's work on the blocks daisy hands a worker; keeps the model between blocks.

  An inference worker's engine uses `threads` CPU threads (None: every CPU
  the worker may use).
  """

  def __init__(self, plan: plan_lib.BlockwisePlan, task: str, threads: Optional[int] = None):
    assert task in plan_lib.TASKS, task
    self.plan = plan
    self.task = task
    self.threads = threads
    self._runner = None

  def __call__(self, block) -> None:
    if not logging.getLogger().handlers:
      # A fresh worker process: its log lines go to the run's worker logs.
      logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    grid = self.plan.grid
    if self.task == 'resolve':
      index, ordinal, name = None, 0, 'all blocks'
    else:
      index = grid.index_of_offset(block.write_roi.offset)
      ordinal, name = grid.ordinal(index), grid.name(index)
    start = time.time()
    try:
      done = self._process(index)
    except Exception as e:  # pylint: disable=broad-except
      # Reported through daisy (which retries the block) and kept for the final report;
      # the worker lives on with its model for the next block.
      logging.exception('%s %s failed', self.task, name)
      _record_failure(self.plan, self.task, ordinal, name, e)
      block.status = daisy.BlockStatus.FAILED
      return
    failure = _failure_path(self.plan, self.task, ordinal)
    if os.path.exists(failure):
      os.remove(failure)
    logging.info('%s %s: %s in %.1f s.', self.task, name, done, time.time() - start)

  def _process(self, index):
    settings = self.plan.stitch
    if self.task == 'inference':
      return self._infer(index)
    if self.task == 'match':
      return stitching.match_block(settings, index)
    if self.task == 'resolve':
      return stitching.resolve_ids(settings)
    return f'{stitching.write_block(settings, index)} voxels written'

  def _infer(self, index) -> str:
    grid = self.plan.grid
    runner = self._get_runner()
    canvas = runner.run(grid.corner(index), grid.block_size(index))
    if canvas is None:
      return 'done before (or all masked)'
    return (f'{runner.counters["inference-calls"].value} FOVs, '
            f'{len(canvas.origins)} objects')

  def _get_runner(self):
    if self._runner is None:
      # Imported here so that stitching workers start without the inference stack.
      # pylint: disable=g-import-not-at-top
      from ffn.inference.engines import registry
      from ffn.inference.request import runner as runner_lib
      # pylint: enable=g-import-not-at-top
      # Kept for the worker's life: its engine serves every block it takes.
      runner = runner_lib.Runner(threads=self.threads)
      runner.prepare(plan_lib.parse_request(self.plan.request_text))
      model = None
      if self.plan.model_factory:
        if self.threads is not None:  # Before a TensorFlow model starts the runtime.
          registry.module(runner.plan.engine).limit_threads(self.threads)
        model = plan_lib.build_model(self.plan.model_factory)
      runner.load_model(model)
      self._runner = runner
    return self._runner


class LaunchedWorker:
  """Starts a worker through a command template (e.g. 'srun -n1 {command}') and waits for it.

  `{command}` is the worker's command line; `{threads}`, where the template
  has it, the CPU threads its engine is given (so that e.g. `srun
  --cpus-per-task={threads}` allocates what it uses).
  """

  def __init__(self, template: str, plan_path: str, task: str, threads: Optional[int] = None):
    self.template = template
    self.plan_path = plan_path
    self.task = task
    self.threads = threads

  def command(self, context: str) -> str:
    """The shell command that starts one worker of the task."""
    # --cwd: the request's relative paths mean what they mean to the scheduler.
    args = [sys.executable, '-m', 'ffn.blockwise.worker', '--plan', self.plan_path,
            '--task', self.task, '--context', context, '--cwd', os.getcwd()]
    if self.threads is not None:
      args += ['--threads', str(self.threads)]
    command = self.template.replace('{command}', shlex.join(args))
    return command if self.threads is None else command.replace('{threads}', str(self.threads))

  def __call__(self, *, context) -> None:
    command = self.command(context.to_env())
    status = subprocess.call(command, shell=True)
    if status != 0:
      raise RuntimeError(f'worker command exited with status {status}: {command}')


def run_worker(plan_path: str, task: str, context: str, threads: Optional[int] = None) -> None:
  """A worker's loop: connects to the scheduler and processes blocks until none are left."""
  plan = plan_lib.BlockwisePlan.load(plan_path)
  os.environ['DAISY_CONTEXT'] = context
  client = daisy.Client()
  function = BlockFunction(plan, task, threads)
  while True:
    with client.acquire_block() as block:
      if block is None:
        return
      function(block)


