"""Validation while training: checkpoints saved every N steps are scored by segmentation.

A `Validator` is the trainer's on-checkpoint hook. The first checkpoint saved
at or after each multiple of `interval` steps is scored as
`select_checkpoint.py` scores one (in `<train_dir>/validation`), either inline
or in a child process running that command, so that training goes on
meanwhile. The scores become `validation/<metric>` TensorBoard scalars at the
checkpoint's step, in the event files of `<train_dir>/validation` (TensorBoard
pointed at the train_dir shows them as the run `validation`).

In a child process, at most one validation runs at a time; a checkpoint due
while one runs waits, and a newer one due before it starts takes its place
(the older is skipped, with a log line). The one waiting at the end of
training is run before training returns.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from typing import Any, Callable, Optional

from google.protobuf import text_format
import tensorflow as tf

from ffn.analysis import checkpoint_selection
from ffn.inference import inference_pb2
from ffn.training import summaries
from ffn.utils import child_process

VALIDATION_DIR = 'validation'
# The scores written as TensorBoard scalars, validation/<name>.
SCALARS = ('vi_split', 'vi_merge', 'vi_total', 'adapted_rand_error', 'erl_nm')


def validation_writer(summary_dir: str) -> Callable[[dict[str, Any]], None]:
  """A callback writing a row's scores as validation/<metric> scalars at its step."""
  writer = tf.summary.create_file_writer(summary_dir)

  def write(row: dict[str, Any]) -> None:
    with writer.as_default():
      for name in SCALARS:
        if row.get(name) is not None:
          summaries.scalar(f'{VALIDATION_DIR}/{name}', row[name], row['step'])
    writer.flush()

  return write


def training_request(request: inference_pb2.InferenceRequest, model_name: str,
                     model_args: str, image_mean: Optional[float] = None,
                     image_stddev: Optional[float] = None) -> inference_pb2.InferenceRequest:
  """The validation request with the trained model: its model fields filled in, or checked.

  model_name and model_args left out are the training run's; given, they must
  be the training run's. image_mean and image_stddev left out are the
  training run's where it has them.
  """
  filled = inference_pb2.InferenceRequest()
  filled.CopyFrom(request)
  if not filled.model_name:
    filled.model_name = model_name
  elif filled.model_name != model_name:
    raise checkpoint_selection.SelectionError(
        f'--validation_request has model_name {filled.model_name!r} but training builds '
        f'{model_name!r}; leave model_name out (it is the training run\'s) or make them equal')
  if not filled.model_args:
    filled.model_args = model_args
  elif _json(filled.model_args, '--validation_request model_args') != _json(
      model_args, '--model_args'):
    raise checkpoint_selection.SelectionError(
        f'--validation_request has model_args {filled.model_args} but training builds the '
        f'model with {model_args}; leave model_args out (they are the training run\'s) or '
        'make them equal')
  if not filled.HasField('image_mean') and image_mean is not None:
    filled.image_mean = image_mean
  if not filled.HasField('image_stddev') and image_stddev is not None:
    filled.image_stddev = image_stddev
  return filled


def _json(text: str, what: str):
  try:
    return json.loads(text)
  except ValueError as e:
    raise checkpoint_selection.SelectionError(f'{what} {text!r} is not JSON: {e}') from e


class Validator:
  """Scores the checkpoints saved at or after multiples of `interval` steps (a context manager).

  `start_step` is the step training starts from (a resumed checkpoint's):
  multiples up to it are not due again. On leaving the context normally, it
  waits for the validations still to run; on an exception, it stops them.
  """

  def __init__(self, validation: checkpoint_selection.Validation, interval: int,
               train_dir: str, start_step: int = 0, metric: str = 'vi_total',
               inline: bool = False):
    # A child process runs select_checkpoint.py, which segments in one run only.
    assert isinstance(validation.segmenter, checkpoint_selection.SingleRun), validation
    if interval < 1:
      raise checkpoint_selection.SelectionError(
          f'validation interval must be a positive number of steps, got {interval}')
    checkpoint_selection.best_row([], metric)  # Checks the name now, not at the first score.
    self.validation = validation
    self.interval = interval
    self.train_dir = train_dir
    self.metric = metric
    self.inline = inline
    self.output_dir = os.path.join(train_dir, VALIDATION_DIR)
    self._last_step = start_step
    self._waiting: Optional[tuple[int, str]] = None
    self._running: Optional[tuple[int, subprocess.Popen]] = None
    self._write: Optional[Callable[[dict[str, Any]], None]] = None  # Made when first needed.

  def __call__(self, step: int, prefix: str) -> None:
    """The trainer's hook: a checkpoint `prefix` of `step` was just saved."""
    due = step // self.interval > self._last_step // self.interval
    self._last_step = max(self._last_step, step)
    if not self.inline:
      self._poll()
    if not due:
      return
    if self.inline:
      self._score_inline(step, prefix)
      return
    if self._waiting is not None:
      logging.info('validation of step %d skipped: step %d is newer and waits in its place '
                   '(one validation runs at a time)', self._waiting[0], step)
    self._waiting = (step, prefix)
    self._poll()

  def _score_inline(self, step: int, prefix: str) -> None:
    logging.info('validating checkpoint %s of step %d inline', prefix, step)
    if self._write is None:
      self._write = validation_writer(self.output_dir)
    selection = checkpoint_selection.select_checkpoints(
        self.validation, [os.path.abspath(prefix)], self.output_dir, self.metric,
        on_scored=self._write)
    row = selection.rows[0]
    logging.info('validation of step %d: %s', step, ', '.join(
        f'{name} {row[name]:.4g}' for name in SCALARS if row.get(name) is not None))

  def _command(self, prefix: str) -> list[str]:
    """The select_checkpoint.py command line scoring one checkpoint."""
    v = self.validation
    return [sys.executable, '-m', 'ffn.scripts.select_checkpoint',
            '--inference_request', text_format.MessageToString(v.request),
            '--bounding_box', text_format.MessageToString(v.box.to_proto(), as_one_line=True),
            '--groundtruth', v.groundtruth, '--checkpoints', os.path.abspath(prefix),
            '--output_dir', self.output_dir, '--metric', self.metric,
            '--summary_dir', self.output_dir,
            '--voxel_size', ','.join(f'{s:g}' for s in v.voxel_size_xyz),
            '--erl' if v.erl else '--noerl']

  def _log_path(self, step: int) -> str:
    return os.path.join(self.output_dir, f'step-{step}.log')

  def _poll(self) -> None:
    """Reaps a finished child and starts the waiting validation (one at a time)."""
    if self._running is not None:
      step, child = self._running
      if child.poll() is None:
        return
      self._report(step, child.returncode)
      self._running = None
    if self._waiting is None:
      return
    step, prefix = self._waiting
    self._waiting = None
    if not os.path.exists(prefix + '.index'):
      # The checkpoint manager keeps the newest few; a slow validation can outlive one.
      logging.warning('validation of step %d skipped: checkpoint %s is gone', step, prefix)
      return
    os.makedirs(self.output_dir, exist_ok=True)
    env = child_process.python_environment()
    with open(self._log_path(step), 'w') as log:
      child = subprocess.Popen(self._command(prefix), stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=env)
    logging.info('validating checkpoint %s of step %d in process %d (log %s)', prefix, step,
                 child.pid, self._log_path(step))
    self._running = (step, child)

  def _report(self, step: int, returncode: int) -> None:
    if returncode:
      logging.warning('validation of step %d failed (exit %d); see %s', step, returncode,
                      self._log_path(step))
    else:
      logging.info('validation of step %d done; scores in %s', step,
                   os.path.join(self.output_dir, checkpoint_selection.SCORES_FILE))

  def wait(self) -> None:
    """Waits for the running validation, then runs the waiting one and waits for it."""
    while self._running is not None or self._waiting is not None:
      if self._running is not None:
        logging.info('waiting for the validation of step %d', self._running[0])
        self._running[1].wait()
      self._poll()

  def stop(self) -> None:
    """Stops the running validation and drops the waiting one."""
    if self._waiting is not None:
      logging.info('validation of step %d dropped: training stopped', self._waiting[0])
      self._waiting = None
    if self._running is not None:
      step, child = self._running
      child.terminate()
      child.wait()
      logging.info('validation of step %d stopped with training', step)
      self._running = None

  def __enter__(self) -> Validator:
    return self

  def __exit__(self, exc_type, *unused) -> None:
    if exc_type is None:
      self.wait()
    else:
      self.stop()
