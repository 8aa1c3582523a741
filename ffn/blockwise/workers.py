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
import threading
import time
from typing import Optional

import daisy.v2 as daisy

from ffn.blockwise import plan as plan_lib
from ffn.blockwise import stitching
from ffn.utils import child_process

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


def batched_request(request, subvolumes: int):
  """The request of a worker growing `subvolumes` blocks at once through one engine.

  Upstream's semantics: `concurrent_requests` subvolumes share the executor,
  whose model calls hold up to `batch_size` FOVs, one from each; a request
  that sets no batch_size gets one FOV per subvolume. Neither field changes
  what a subvolume's result is (they are not result settings).
  """
  if subvolumes <= 1:
    return request
  batched = type(request)()
  batched.CopyFrom(request)
  batched.concurrent_requests = subvolumes
  if not request.HasField('batch_size'):
    batched.batch_size = subvolumes
  return batched


# Starts the worker's log line of its engine's batches (read by bench/scaling.py).
BATCH_LOG = 'Engine batches:'


class BlockFunction:
  """One task's work on the blocks daisy hands a worker; keeps the model between blocks.

  An inference worker's engine uses `threads` CPU threads (None: every CPU
  the worker may use). A worker growing `subvolumes` blocks at once calls it
  from that many threads, which share one runner and so one batched engine.
  """

  def __init__(self, plan: plan_lib.BlockwisePlan, task: str, threads: Optional[int] = None,
               subvolumes: int = 1):
    assert task in plan_lib.TASKS, task
    assert subvolumes == 1 or task == 'inference', (task, subvolumes)
    self.plan = plan
    self.task = task
    self.threads = threads
    self.subvolumes = subvolumes
    self._runner = None
    self._runner_lock = threading.Lock()

  def __getstate__(self) -> dict:
    # daisy ships the function to its worker processes: without the model, or the lock.
    return dict(self.__dict__, _runner=None, _runner_lock=None)

  def __setstate__(self, state: dict) -> None:
    self.__dict__.update(state, _runner_lock=threading.Lock())

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
    # The runner's own counters add up every block of the worker; the canvas's are this one's.
    canvas = runner.run(grid.corner(index), grid.block_size(index), reset_counters=False)
    if canvas is None:
      return 'done before (or all masked)'
    return (f'{canvas.counters["inference-calls"].value} FOVs, '
            f'{len(canvas.origins)} objects')

  @property
  def runner(self):
    """The worker's runner once an inference block has built it, else None."""
    return self._runner

  def _get_runner(self):
    with self._runner_lock:
      if self._runner is None:
        self._runner = self._make_runner()
    return self._runner

  def _make_runner(self):
    """The worker's runner: request checked, model restored, engine built (once per worker)."""
    # Imported here so that stitching workers start without the inference stack.
    # pylint: disable=g-import-not-at-top
    from ffn.inference.engines import registry
    from ffn.inference.request import runner as runner_lib
    # pylint: enable=g-import-not-at-top
    # Kept for the worker's life: its engine serves every block it takes.
    runner = runner_lib.Runner(threads=self.threads)
    runner.prepare(batched_request(plan_lib.parse_request(self.plan.request_text),
                                   self.subvolumes))
    model = None
    if self.plan.model_factory:
      if self.threads is not None:  # Before a TensorFlow model starts the runtime.
        registry.module(runner.plan.engine).limit_threads(self.threads)
      model = plan_lib.build_model(self.plan.model_factory)
    runner.load_model(model)
    if self.subvolumes > 1:
      logging.info('This worker grows %d subvolumes at once, up to %d FOVs per model call.',
                   self.subvolumes, runner.plan.batch_size)
    return runner


class LaunchedWorker:
  """Starts a worker through a command template (e.g. 'srun -n1 {command}') and waits for it.

  `{command}` is the worker's command line; `{threads}`, where the template
  has it, the CPU threads its engine is given (so that e.g. `srun
  --cpus-per-task={threads}` allocates what it uses). The worker grows
  `subvolumes` blocks at once.
  """

  def __init__(self, template: str, plan_path: str, task: str, threads: Optional[int] = None,
               subvolumes: int = 1):
    self.template = template
    self.plan_path = plan_path
    self.task = task
    self.threads = threads
    self.subvolumes = subvolumes

  def command(self, context: str) -> str:
    """The shell command that starts one worker of the task."""
    # --cwd: the request's relative paths mean what they mean to the scheduler.
    args = [sys.executable, '-m', 'ffn.blockwise.worker', '--plan', self.plan_path,
            '--task', self.task, '--context', context, '--cwd', os.getcwd()]
    if self.threads is not None:
      args += ['--threads', str(self.threads)]
    if self.subvolumes > 1:
      args += ['--subvolumes', str(self.subvolumes)]
    command = self.template.replace('{command}', shlex.join(args))
    return command if self.threads is None else command.replace('{threads}', str(self.threads))

  def environment(self) -> Optional[dict[str, str]]:
    """The worker's environment variables (None: this process's)."""
    return None

  def log_path(self, context) -> Optional[str]:
    """Where the worker's output goes (None: this process's output)."""
    del context
    return None

  def __call__(self, *, context) -> None:
    command = self.command(context.to_env())
    log_path = self.log_path(context)
    if log_path is None:
      status = subprocess.call(command, shell=True, env=self.environment())
    else:
      os.makedirs(os.path.dirname(log_path), exist_ok=True)
      with open(log_path, 'ab') as log:
        status = subprocess.call(command, shell=True, env=self.environment(), stdout=log,
                                 stderr=subprocess.STDOUT)
    if status != 0:
      raise RuntimeError(f'worker command exited with status {status}: {command}'
                         + (f' (its log: {log_path})' if log_path else ''))


class LocalWorker(LaunchedWorker):
  """A worker process on this machine, for workers that hold several blocks at once.

  It imports what this process can (its `sys.path`), as daisy's own workers
  do, and logs beside them, to `log_dir/<task>/worker_<id>.log`.
  """

  def __init__(self, plan_path: str, task: str, threads: Optional[int], subvolumes: int,
               log_dir: str):
    super().__init__('{command}', plan_path, task, threads, subvolumes)
    self.log_dir = log_dir

  def environment(self) -> dict[str, str]:
    return child_process.python_environment()

  def log_path(self, context) -> str:
    return os.path.join(self.log_dir, self.task, f'worker_{context["worker_id"]}.log')


def run_worker(plan_path: str, task: str, context: str, threads: Optional[int] = None,
               subvolumes: int = 1) -> None:
  """A worker's loop: connects to the scheduler and processes blocks until none are left.

  With `subvolumes` > 1, that many loops run side by side, each holding one
  block, all through one engine.
  """
  plan = plan_lib.BlockwisePlan.load(plan_path)
  os.environ['DAISY_CONTEXT'] = context
  function = BlockFunction(plan, task, threads, subvolumes)
  if subvolumes == 1:
    _take_blocks(daisy.Client(), function)
    return
  errors_seen: list[BaseException] = []

  def loop() -> None:
    try:
      _take_blocks(daisy.Client(), function)
    except BaseException as e:  # pylint: disable=broad-except
      errors_seen.append(e)

  loops = [threading.Thread(target=loop, name=f'ffn-subvolume-{i}') for i in range(subvolumes)]
  for thread in loops:
    thread.start()
  for thread in loops:
    thread.join()
  if function.runner is not None:
    function.runner.stop_executor()
    _log_batches(function.runner.counters)
  if errors_seen:
    raise errors_seen[0]


def _log_batches(counters) -> None:
  """One line: the model calls of the worker's engine by the FOVs each held."""
  from ffn.inference.engines import executor  # pylint: disable=g-import-not-at-top
  sizes = executor.batch_sizes(counters)
  calls = sum(sizes.values())
  fovs = sum(n * c for n, c in sizes.items())
  logging.info('%s %d FOVs in %d model calls (%.2f FOVs per call); calls by FOVs held: %s.',
               BATCH_LOG, fovs, calls, fovs / max(calls, 1),
               ', '.join(f'{n}: {c}' for n, c in sorted(sizes.items())))


def _take_blocks(client, function: BlockFunction) -> None:
  """Processes blocks acquired through `client` (one connection, one block at a time)."""
  while True:
    with client.acquire_block() as block:
      if block is None:
        return
      function(block)
