"""Blockwise inference and stitching as daisy tasks: plan, workers, run, failure report.

The tasks, in dependency order (daisy starts a block once the blocks it reads are done):

  inference  one ordinary run_inference subvolume per block, side by side
             (results in the request's segmentation_output_dir, as run_inference.py
             writes them; a worker loads the model once and takes block after block)
  match      a block and its later neighbours: matched objects across the overlaps
  resolve    one block: union-find over all matches, the id table
  write      a block's owned region, relabelled, into the staged output volume
             (neighbouring blocks never write at the same time: they share chunks)

daisy keeps a done marker per block under the run's work directory, so a rerun
skips what is done; a subvolume that was in flight resumes from its `.cpoint`
(when the request sets checkpoint_interval). A block that raises is retried
(`max_retries`), and if it keeps failing it is reported by name with its error
while the other blocks finish. The output is committed under its name only
when every block is done.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from typing import Optional

import daisy.v2 as daisy
import numpy as np
from daisy import logging as daisy_logging

from ffn.blockwise import grid as grid_lib
from ffn.blockwise import plan as plan_lib
from ffn.blockwise import progress_log
from ffn.blockwise import stitching
from ffn.blockwise import workers
from ffn.inference.io import volumes as inference_volumes
from ffn.utils import atomic
from ffn.utils import axes
from ffn.utils import errors
from ffn.utils import hardware


class BlockwiseError(errors.FFNError):
  """A blockwise run that could not finish, with the blocks and errors that stopped it."""


def _rois(grid: grid_lib.BlockGrid, reach: int) -> tuple[daisy.Roi, daisy.Roi, daisy.Roi]:
  """(total, read, write) ROIs of a task whose blocks read `reach` neighbours each way."""
  stride = grid.stride
  grown = tuple(reach * s for s in stride)
  total = daisy.Roi(grid.start, tuple(n * s for n, s in zip(grid.shape, stride)))
  total = total.grow(grown, grown)
  read = daisy.Roi(tuple(-g for g in grown), tuple((2 * reach + 1) * s for s in stride))
  return total, read, daisy.Roi((0, 0, 0), stride)


def _skip_mask(plan: plan_lib.BlockwisePlan) -> Optional[np.ndarray]:
  """1 for each grid position the plan leaves out (None: it leaves none out)."""
  if plan.stitch.active_blocks is None:
    return None
  mask = np.ones(plan.grid.shape, np.uint8)
  for index in plan.stitch.active_blocks:
    mask[index] = 0
  return mask


def worker_threads(threads_per_worker: int, num_workers: int,
                   worker_command: Optional[str]) -> Optional[int]:
  """The CPU threads of each inference worker's engine; None: every CPU the worker may use.

  0 asks for the default: local workers share this machine's usable CPUs
  evenly (N engines of all k cores each would run N x k threads on k cores);
  launched workers use what their launcher gives them.
  """
  if threads_per_worker > 0:
    return threads_per_worker
  if worker_command is not None:
    return None
  return max(1, hardware.usable_cpus() // num_workers)


def subvolumes_per_worker(requested: int, request) -> int:
  """The blocks each inference worker grows at once; 0 asks for the request's concurrent_requests."""
  return requested if requested > 0 else max(int(request.concurrent_requests), 1)


def _worker(plan: plan_lib.BlockwisePlan, name: str, worker_command: Optional[str],
            threads: Optional[int], subvolumes: int):
  """What daisy calls for the blocks of task `name`: in its own workers, or a launched one."""
  subvolumes = subvolumes if name == 'inference' else 1
  if worker_command is not None:
    return workers.LaunchedWorker(worker_command, plan.plan_path, name, threads, subvolumes)
  if subvolumes == 1:
    return workers.BlockFunction(plan, name, threads)
  # A worker holding several blocks at once runs its own loops over them: a process of its own.
  return workers.LocalWorker(plan.plan_path, name, threads, subvolumes, _log_dir(plan))


def _subvolumes(plan: plan_lib.BlockwisePlan, requested: int) -> int:
  """The blocks each inference worker grows at once (`subvolumes_per_worker`), checked."""
  if requested < 0:
    raise BlockwiseError(f'--subvolumes_per_worker {requested} must be at least 0 (0: the '
                         "request's concurrent_requests)")
  return subvolumes_per_worker(requested, plan_lib.parse_request(plan.request_text))


def _tasks(plan: plan_lib.BlockwisePlan, num_workers: int, worker_command: Optional[str],
           threads: Optional[int], subvolumes: int = 1):
  """The daisy pipeline of a plan."""
  markers = os.path.join(plan.work_dir, 'done')

  def task(name, rois, max_workers, conflict, skip_mask=None):
    function = _worker(plan, name, worker_command, threads, subvolumes)
    made = daisy.Task(name, *rois, process_function=function, read_write_conflict=conflict,
                      fit='valid', max_workers=max_workers, max_retries=plan.max_retries,
                      timeout=plan.block_timeout_secs,
                      tracking_path=os.path.join(markers, name), skip_mask=skip_mask)
    # Block positions are grid positions, which the skip mask relies on.
    assert skip_mask is None or tuple(made.block_grid_shape) == plan.grid.shape
    return made

  skip = _skip_mask(plan)
  whole = _rois(plan.grid, 1)[0]
  pipeline = (task('match', _rois(plan.grid, 1), num_workers, False, skip)
              + task('resolve', (whole, whole, whole), 1, False)
              + task('write', _rois(plan.grid, 1), num_workers, True, skip))
  if plan.request_text is not None:
    pipeline = task('inference', _rois(plan.grid, 0), num_workers, False, skip) + pipeline
  return pipeline


def _left_out(plan: plan_lib.BlockwisePlan, name: str) -> int:
  """Blocks of task `name` the plan does not run (daisy counts them as skipped)."""
  return 0 if name == 'resolve' else len(plan.grid) - len(plan.stitch.blocks())


def _log_states(states, seconds: float, plan: plan_lib.BlockwisePlan) -> None:
  """Counts of each task, and the rate of the blocks run now."""
  ran = 0
  for name in plan_lib.TASKS:
    if name in states:
      state = states[name]
      # daisy counts the blocks its skip mask leaves out among the skipped ones.
      inactive = _left_out(plan, name)
      ran += state.completed_count - state.skipped_count
      not_run = f', {inactive} not run (no point in them)' if inactive else ''
      logging.info('%s: %d of %d blocks done (%d of them before this run%s), %d failed, %d '
                   'waiting on failed blocks.', name, state.completed_count - inactive,
                   state.total_block_count - inactive, state.skipped_count - inactive,
                   not_run, state.failed_count, state.orphaned_count)
  logging.info('%d blocks run in %.1f s (%.2f blocks/min).', ran, seconds,
               60.0 * ran / max(seconds, 1e-9))


def _log_dir(plan: plan_lib.BlockwisePlan) -> str:
  """Where the workers' logs go."""
  return os.path.join(plan.work_dir, 'logs')


def _block_log(plan: plan_lib.BlockwisePlan, bars: Optional[bool]) -> progress_log.BlockLog:
  """The observer that logs each finished block (and draws daisy's bars if wanted)."""
  return progress_log.BlockLog(
      {name: _left_out(plan, name) for name in plan_lib.TASKS},
      progress_log.daisy_bars(plan_lib.TASKS) if progress_log.bars_wanted(bars) else None)


def _committed_path(plan: plan_lib.BlockwisePlan) -> str:
  return os.path.join(plan.work_dir, 'committed')


def _prepare_output(plan: plan_lib.BlockwisePlan) -> bool:
  """Checks the output's name; False when this plan's output is committed already."""
  output = plan.stitch.output()
  if output.exists():
    if os.path.exists(_committed_path(plan)):
      return False
    raise BlockwiseError(f'--output_volume {plan.stitch.output_volume!r} exists; remove it or '
                         'choose another')
  if os.path.exists(_committed_path(plan)):
    # The output was removed after a finished run: write its blocks again.
    os.remove(_committed_path(plan))
    shutil.rmtree(os.path.join(plan.work_dir, 'done', 'write'), ignore_errors=True)
  output.create_staged(plan.stitch.output_shape(), plan.stitch.output_chunks())
  return True


def _check_request(plan: plan_lib.BlockwisePlan, subvolumes: int) -> None:
  """Fails before any work on a bad request or a region outside the image."""
  request = workers.batched_request(plan_lib.parse_request(plan.request_text), subvolumes)
  if os.path.abspath(request.segmentation_output_dir) != os.path.abspath(
      plan.stitch.segmentation_dir):
    raise BlockwiseError('the plan stitches results from another directory than the '
                         "request's segmentation_output_dir")
  from ffn.inference.request import runner as runner_lib  # pylint: disable=g-import-not-at-top
  runner_lib.Runner().prepare(request)  # Checks the request and opens its volumes.
  grid = plan.grid
  shape = inference_volumes.decorated_volume(request.image).shape[-3:]
  end = [s + n for s, n in zip(grid.start, grid.size)]
  if any(e > n for e, n in zip(end, shape)) or min(grid.start) < 0:
    raise BlockwiseError(f'--bounding_box ends at {axes.xyz(end)} (xyz), beyond the image '
                         f'volume of size {axes.xyz(shape)} (xyz)')


def run(plan: plan_lib.BlockwisePlan, num_workers: int = 1, worker_command: Optional[str] = None,
        host: Optional[str] = None, progress: Optional[bool] = None,
        threads_per_worker: int = 0, subvolumes_per_worker: int = 0) -> None:
  """Runs (or finishes) every missing block of the plan, then commits the output.

  Each inference worker's engine gets `worker_threads(threads_per_worker, ...)`
  and grows `subvolumes_per_worker(...)` blocks at once, their FOVs batched. Each
  finished block is logged; `progress` draws daisy's bars too (None: when stderr
  is a terminal).

  Raises BlockwiseError naming each block that kept failing, with its error.
  """
  subvolumes = 1
  if plan.request_text is not None:
    subvolumes = _subvolumes(plan, subvolumes_per_worker)
    _check_request(plan, subvolumes)
  else:
    missing = stitching.missing_results(plan.stitch)
    if missing:
      raise BlockwiseError(f'{len(missing)} subvolume result(s) missing in '
                           f'{plan.stitch.segmentation_dir}: {", ".join(missing[:10])}')
  os.makedirs(plan.work_dir, exist_ok=True)
  atomic.atomic_write_text(plan.plan_path, plan.to_json())
  if not _prepare_output(plan):
    logging.info('%s is complete already.', plan.stitch.output_volume)
    return
  shutil.rmtree(workers.failure_dir(plan), ignore_errors=True)
  daisy_logging.set_log_basedir(_log_dir(plan))
  logging.info('%d blocks (%s zyx) of %s (zyx) voxels, %d of them run, %d worker(s); work '
               'files and worker logs in %s.', len(plan.grid), plan.grid.shape,
               plan.grid.subvolume_size, len(plan.stitch.blocks()), num_workers, plan.work_dir)
  if host is None and worker_command is None:
    host = '127.0.0.1'
  threads = worker_threads(threads_per_worker, num_workers, worker_command)
  if plan.request_text is not None:
    logging.info('Each inference worker\'s engine: %s; %d subvolume(s) grown at once per '
                 'worker.', 'every CPU its launcher gives it' if threads is None else
                 f'{threads} CPU thread(s) ({hardware.usable_cpus()} usable here, '
                 f'{num_workers} worker(s))', subvolumes)
  start = time.time()
  try:
    states = daisy.run_blockwise(_tasks(plan, num_workers, worker_command, threads, subvolumes),
                                 progress=_block_log(plan, progress),
                                 return_states=True, host=host, summary=False)
  except RuntimeError as e:
    failures = '\n'.join(workers.read_failures(plan))
    raise BlockwiseError(f'the run was abandoned: {e}\n{failures}') from e
  _log_states(states, time.time() - start, plan)
  failures = workers.read_failures(plan)
  incomplete = [name for name, state in states.items()
                if state.completed_count != state.total_block_count]
  if failures or incomplete:
    details = failures or [f'{name}: {states[name].last_worker_error}' for name in incomplete]
    raise BlockwiseError('blocks failed; rerun to retry them (done blocks are kept):\n  '
                         + '\n  '.join(details))
  plan.stitch.output().commit()
  atomic.atomic_write_text(_committed_path(plan), plan.stitch.output_volume + '\n')
  logging.info('Stitched segmentation written to %s in %.1f s.', plan.stitch.output_volume,
               time.time() - start)

