"""Validation while training: checkpoints saved every N steps are scored by segmentation.

A `Validator` is the trainer's on-checkpoint hook. Each checkpoint saved at a
multiple of `interval` is scored like `select_checkpoint.py` scores one (in
`<train_dir>/validation`), either inline or in a child process running that
command, so that training goes on meanwhile; the scores become
`validation/<metric>` TensorBoard scalars in the train_dir at the checkpoint's step.
"""

from __future__ import annotations

import collections
import logging
import os
import subprocess
import sys
from typing import Any, Callable, Optional

from google.protobuf import text_format
import tensorflow as tf

from ffn.analysis import checkpoint_selection
from ffn.training import summaries

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


def _package_root() -> str:
  """The directory holding the ffn package, for the child's PYTHONPATH."""
  return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Validator:
  """Scores the checkpoints saved at multiples of `interval` steps (a context manager)."""

  def __init__(self, validation: checkpoint_selection.Validation, interval: int,
               train_dir: str, metric: str = 'vi_total', inline: bool = False):
    checkpoint_selection.best_row([], metric)  # Checks the name now, not at the first score.
    checkpoint_selection.check_validation(validation)
    self.validation = validation
    self.interval = interval
    self.train_dir = train_dir
    self.metric = metric
    self.inline = inline
    self.output_dir = os.path.join(train_dir, VALIDATION_DIR)
    self._waiting: collections.deque[tuple[int, str]] = collections.deque()
    self._running: Optional[tuple[int, subprocess.Popen]] = None
    self._write = validation_writer(train_dir) if inline else None

  def __call__(self, step: int, prefix: str) -> None:
    """The trainer's hook: a checkpoint `prefix` of `step` was just saved."""
    if step % self.interval:
      return
    if self.inline:
      logging.info('validating checkpoint %s inline', prefix)
      selection = checkpoint_selection.select_checkpoints(
          self.validation, [os.path.abspath(prefix)], self.output_dir, self.metric,
          on_scored=self._write)
      row = selection.rows[0]
      logging.info('validation at step %d: %s %s', step, self.metric, row.get(self.metric))
      return
    self._waiting.append((step, prefix))
    self._poll()

  def _command(self, prefix: str) -> list[str]:
    """The select_checkpoint.py command line scoring one checkpoint."""
    v = self.validation
    return [sys.executable, '-m', 'ffn.scripts.select_checkpoint',
            '--inference_request', text_format.MessageToString(v.request),
            '--bounding_box', text_format.MessageToString(v.box.to_proto(), as_one_line=True),
            '--groundtruth', v.groundtruth, '--checkpoints', os.path.abspath(prefix),
            '--output_dir', self.output_dir, '--metric', self.metric,
            '--summary_dir', self.train_dir,
            '--voxel_size', ','.join(f'{s:g}' for s in v.voxel_size_xyz),
            '--erl' if v.erl else '--noerl']

  def _poll(self) -> None:
    """Reaps a finished child and starts the next waiting one (one at a time)."""
    if self._running is not None:
      step, child = self._running
      if child.poll() is None:
        return
      self._report(step, child.returncode)
      self._running = None
    if not self._waiting:
      return
    step, prefix = self._waiting.popleft()
    if not os.path.exists(prefix + '.index'):
      # The checkpoint manager keeps the newest few; a backlog can outlive one.
      logging.warning('checkpoint %s of step %d is gone before its validation; skipped',
                      prefix, step)
      self._poll()
      return
    os.makedirs(self.output_dir, exist_ok=True)
    log_path = os.path.join(self.output_dir, f'step-{step}.log')
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [_package_root(),
                                                     env.get('PYTHONPATH')]))
    with open(log_path, 'w') as log:
      child = subprocess.Popen(self._command(prefix), stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=env)
    logging.info('validating checkpoint %s in process %d (log %s)', prefix, child.pid, log_path)
    self._running = (step, child)

  def _report(self, step: int, returncode: int) -> None:
    if returncode:
      logging.warning('validation of step %d failed (exit %d); see %s', step, returncode,
                      os.path.join(self.output_dir, f'step-{step}.log'))
    else:
      logging.info('validation of step %d done; scores in %s', step,
                   os.path.join(self.output_dir, checkpoint_selection.SCORES_FILE))

  def wait(self) -> None:
    """Waits for the running and the waiting validations."""
    while self._running is not None or self._waiting:
      if self._running is not None:
        logging.info('waiting for the validation of step %d', self._running[0])
        self._running[1].wait()
      self._poll()

  def __enter__(self) -> Validator:
    return self

  def __exit__(self, exc_type, *unused) -> None:
    if exc_type is None or not issubclass(exc_type, KeyboardInterrupt):
      self.wait()
      return
    if self._running is not None:
      self._running[1].terminate()
      self._running[1].wait()
