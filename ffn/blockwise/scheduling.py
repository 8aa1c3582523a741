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

import dataclasses
import importlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from typing import Callable, Optional

import daisy.v2 as daisy
from daisy import logging as daisy_logging
from google.protobuf import text_format

from ffn.blockwise import grid as grid_lib
from ffn.blockwise import stitching
from ffn.inference import inference_pb2
from ffn.utils import atomic

TASKS = ('inference', 'match', 'resolve', 'write')


class BlockwiseError(ValueError):
  """A blockwise run that could not finish, with the blocks and errors that stopped it."""


@dataclasses.dataclass(frozen=True)
class BlockwisePlan:
  """Everything a scheduler or a worker needs, saved as JSON for workers started elsewhere.

  `request_text` is None when the subvolume results exist already (stitching
  only). `model_factory` ('module:attribute', optional) builds the model
  instead of the request's model_name and checkpoint (a notebook's model, a
  test's).
  """
  stitch: stitching.StitchSettings
  request_text: Optional[str] = None
  model_factory: str = ''
  max_retries: int = 2
  block_timeout_secs: float = 24 * 3600.0

  @property
  def grid(self) -> grid_lib.BlockGrid:
    return self.stitch.grid

  @property
  def work_dir(self) -> str:
    return self.stitch.work_dir

  @property
  def plan_path(self) -> str:
    return os.path.join(self.work_dir, 'plan.json')

  def to_json(self) -> str:
    """The plan as JSON text."""
    return json.dumps({
        'segmentation_dir': self.stitch.segmentation_dir, 'grid': self.grid.to_json_dict(),
        'output_volume': self.stitch.output_volume,
        'min_overlap_size': self.stitch.min_overlap_size,
        'output_shape_zyx': self.stitch.output_shape_zyx, 'request': self.request_text,
        'model_factory': self.model_factory, 'max_retries': self.max_retries,
        'block_timeout_secs': self.block_timeout_secs}, indent=1)

  @classmethod
  def from_json(cls, text: str) -> 'BlockwisePlan':
    """The plan of `to_json` text."""
    data = json.loads(text)
    settings = stitching.StitchSettings(
        data['segmentation_dir'], grid_lib.BlockGrid(**data['grid']), data['output_volume'],
        data['min_overlap_size'], data['output_shape_zyx'])
    return cls(settings, data['request'], data['model_factory'], data['max_retries'],
               data['block_timeout_secs'])

  @classmethod
  def load(cls, path: str) -> 'BlockwisePlan':
    """The plan saved at `path`."""
    with open(path) as f:
      return cls.from_json(f.read())


def parse_request(text: str) -> inference_pb2.InferenceRequest:
  """The InferenceRequest of a plan."""
  return text_format.Parse(text, inference_pb2.InferenceRequest())


def _import_factory(name: str) -> Callable:
  """The callable named 'module:attribute'."""
  module, _, attribute = name.partition(':')
  return getattr(importlib.import_module(module), attribute)


# ----------------------------------------------------------------------------
# Failure records: one file per failing block, its attempts one line each.


def _failure_dir(plan: BlockwisePlan) -> str:
  return os.path.join(plan.work_dir, 'failures')


def _failure_path(plan: BlockwisePlan, task: str, ordinal: int) -> str:
  return os.path.join(_failure_dir(plan), f'{task}-{ordinal}.txt')


def _record_failure(plan: BlockwisePlan, task: str, ordinal: int, name: str,
                    error: BaseException) -> None:
  os.makedirs(_failure_dir(plan), exist_ok=True)
  with open(_failure_path(plan, task, ordinal), 'a') as f:
    f.write(f'{task} {name}: {type(error).__name__}: {error}\n')


def read_failures(plan: BlockwisePlan) -> list[str]:
  """'task block: error (n attempts)' for every block whose last attempt failed."""
  reports = []
  if not os.path.isdir(_failure_dir(plan)):
    return reports
  for entry in sorted(os.listdir(_failure_dir(plan))):
    with open(os.path.join(_failure_dir(plan), entry)) as f:
      attempts = [line.rstrip('\n') for line in f if line.strip()]
    if attempts:
      reports.append(f'{attempts[-1]} ({len(attempts)} attempts)')
  return reports


# ----------------------------------------------------------------------------
# Workers.


class BlockFunction:
  """One task's work on the blocks daisy hands a worker; keeps the model between blocks."""

  def __init__(self, plan: BlockwisePlan, task: str):
    assert task in TASKS, task
    self.plan = plan
    self.task = task
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
      from ffn.inference import runner as runner_lib  # pylint: disable=g-import-not-at-top
      runner = runner_lib.Runner()
      runner.prepare(parse_request(self.plan.request_text))
      model = _import_factory(self.plan.model_factory)() if self.plan.model_factory else None
      runner.load_model(model)
      self._runner = runner
    return self._runner


class LaunchedWorker:
  """Starts a worker through a command template (e.g. 'srun -n1 {command}') and waits for it."""

  def __init__(self, template: str, plan_path: str, task: str):
    self.template = template
    self.plan_path = plan_path
    self.task = task

  def command(self, context: str) -> str:
    """The shell command that starts one worker of the task."""
    worker = shlex.join([sys.executable, '-m', 'ffn.blockwise.worker', '--plan', self.plan_path,
                         '--task', self.task, '--context', context])
    return self.template.replace('{command}', worker)

  def __call__(self, *, context) -> None:
    command = self.command(context.to_env())
    status = subprocess.call(command, shell=True)
    if status != 0:
      raise RuntimeError(f'worker command exited with status {status}: {command}')


def run_worker(plan_path: str, task: str, context: str) -> None:
  """A worker's loop: connects to the scheduler and processes blocks until none are left."""
  plan = BlockwisePlan.load(plan_path)
  os.environ['DAISY_CONTEXT'] = context
  client = daisy.Client()
  function = BlockFunction(plan, task)
  while True:
    with client.acquire_block() as block:
      if block is None:
        return
      function(block)


# ----------------------------------------------------------------------------
# The scheduler side.


def _rois(grid: grid_lib.BlockGrid, reach: int) -> tuple[daisy.Roi, daisy.Roi, daisy.Roi]:
  """(total, read, write) ROIs of a task whose blocks read `reach` neighbours each way."""
  stride = grid.stride
  grown = tuple(reach * s for s in stride)
  total = daisy.Roi(grid.start, tuple(n * s for n, s in zip(grid.shape, stride)))
  total = total.grow(grown, grown)
  read = daisy.Roi(tuple(-g for g in grown), tuple((2 * reach + 1) * s for s in stride))
  return total, read, daisy.Roi((0, 0, 0), stride)


def _tasks(plan: BlockwisePlan, num_workers: int, worker_command: Optional[str]):
  """The daisy pipeline of a plan."""
  markers = os.path.join(plan.work_dir, 'done')

  def task(name, rois, workers, conflict):
    function = (BlockFunction(plan, name) if worker_command is None
                else LaunchedWorker(worker_command, plan.plan_path, name))
    return daisy.Task(name, *rois, process_function=function, read_write_conflict=conflict,
                      fit='valid', max_workers=workers, max_retries=plan.max_retries,
                      timeout=plan.block_timeout_secs,
                      tracking_path=os.path.join(markers, name))

  whole = _rois(plan.grid, 1)[0]
  pipeline = (task('match', _rois(plan.grid, 1), num_workers, False)
              + task('resolve', (whole, whole, whole), 1, False)
              + task('write', _rois(plan.grid, 1), num_workers, True))
  if plan.request_text is not None:
    pipeline = task('inference', _rois(plan.grid, 0), num_workers, False) + pipeline
  return pipeline


def _log_states(states, seconds: float) -> None:
  """Counts and rates of each task."""
  for name in TASKS:
    if name not in states:
      continue
    state = states[name]
    ran = state.completed_count - state.skipped_count
    logging.info('%s: %d of %d blocks done (%d done before), %d failed, %d waiting on failed '
                 'blocks; %.2f blocks/min.', name, state.completed_count,
                 state.total_block_count, state.skipped_count, state.failed_count,
                 state.orphaned_count, 60.0 * ran / max(seconds, 1e-9))


def _committed_path(plan: BlockwisePlan) -> str:
  return os.path.join(plan.work_dir, 'committed')


def _prepare_output(plan: BlockwisePlan) -> bool:
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


def _check_request(plan: BlockwisePlan) -> None:
  """Fails before any work on a bad request or a region outside the image."""
  request = parse_request(plan.request_text)
  if os.path.abspath(request.segmentation_output_dir) != os.path.abspath(
      plan.stitch.segmentation_dir):
    raise BlockwiseError('the plan stitches results from another directory than the '
                         "request's segmentation_output_dir")
  from ffn.inference import runner as runner_lib  # pylint: disable=g-import-not-at-top
  runner = runner_lib.Runner()
  runner.prepare(request)
  grid = plan.grid
  runner.check_box(grid.start, grid.size)
  shape = runner._image_volume.shape[-3:]  # pylint: disable=protected-access
  end = [s + n for s, n in zip(grid.start, grid.size)]
  if any(e > n for e, n in zip(end, shape)) or min(grid.start) < 0:
    raise BlockwiseError(f'--bounding_box ends at {end[::-1]} (xyz), beyond the image volume '
                         f'of size {tuple(shape)[::-1]} (xyz)')


def run(plan: BlockwisePlan, num_workers: int = 1, worker_command: Optional[str] = None,
        host: Optional[str] = None, progress: bool = True) -> None:
  """Runs (or finishes) every missing block of the plan, then commits the output.

  Raises BlockwiseError naming each block that kept failing, with its error.
  """
  if plan.request_text is not None:
    _check_request(plan)
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
  shutil.rmtree(_failure_dir(plan), ignore_errors=True)
  daisy_logging.set_log_basedir(os.path.join(plan.work_dir, 'logs'))
  logging.info('%d blocks (%s zyx) of %s (zyx) voxels, %d worker(s); work files and worker '
               'logs in %s.', len(plan.grid), plan.grid.shape, plan.grid.subvolume_size,
               num_workers, plan.work_dir)
  if host is None and worker_command is None:
    host = '127.0.0.1'
  start = time.time()
  try:
    states = daisy.run_blockwise(_tasks(plan, num_workers, worker_command), progress=progress,
                                 return_states=True, host=host, summary=False)
  except RuntimeError as e:
    raise BlockwiseError(f'the run was abandoned: {e}\n' + '\n'.join(read_failures(plan))) from e
  _log_states(states, time.time() - start)
  failures = read_failures(plan)
  incomplete = [name for name, state in states.items()
                if state.completed_count != state.total_block_count]
  if failures or incomplete:
    details = failures or [f'{name}: {states[name].last_worker_error}' for name in incomplete]
    raise BlockwiseError(f'blocks failed; rerun to retry them (done blocks are kept):\n  '
                         + '\n  '.join(details))
  plan.stitch.output().commit()
  atomic.atomic_write_text(_committed_path(plan), plan.stitch.output_volume + '\n')
  logging.info('Stitched segmentation written to %s in %.1f s.', plan.stitch.output_volume,
               time.time() - start)
