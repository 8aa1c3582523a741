"""Scores checkpoints by how well they segment a validation box, and picks the best one.

Each checkpoint segments the box with the validation request (its
model_checkpoint_path replaced, output in its own subdirectory), in one run or
through another `Segmenter` (e.g. a stitched blockwise run), and is scored
against the groundtruth: VI split and merge, adapted Rand error and ERL on
skeletons of the groundtruth. Scores are kept in `<output_dir>/scores.json`;
a checkpoint scored there is not segmented again.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import math
import os
import time
from typing import Any, Callable, Optional, Protocol, Sequence

from ffn.analysis import checkpoint_plot
from ffn.analysis import evaluation
from ffn.analysis import results
from ffn.analysis import skeletons
from ffn.inference import inference_pb2
from ffn.inference.request import run_request
from ffn.inference.request import runner as runner_lib
from ffn.training import checkpoint as checkpoint_lib
from ffn.utils import atomic
from ffn.utils import bounding_box
from ffn.utils import errors
from ffn.utils import volumes

SCORES_FILE = 'scores.json'
PLOT_FILE = 'scores.png'
# Metric name -> whether higher is better.
METRICS = {'vi_total': False, 'vi_split': False, 'vi_merge': False,
           'adapted_rand_error': False, 'erl_nm': True}


class SelectionError(errors.FFNError):
  """The checkpoints or the validation inputs cannot be scored as asked."""


class Segmenter(Protocol):
  """How a checkpoint's request segments the validation box."""

  def key(self) -> dict[str, Any]:
    """What decides the result (recorded in the scores file; workers and threads do not)."""

  def segment(self, request: inference_pb2.InferenceRequest, box: bounding_box.BoundingBox,
              shape_zyx: Sequence[int]) -> results.Segmentation:
    """Segments `box` with `request`; a volume returned spans voxel 0 to `shape_zyx`."""


@dataclasses.dataclass(frozen=True)
class SingleRun:
  """The box segmented as one subvolume, as run_inference.py does."""

  def key(self) -> dict[str, Any]:
    return {'mode': 'single'}

  def segment(self, request: inference_pb2.InferenceRequest, box: bounding_box.BoundingBox,
              shape_zyx: Sequence[int]) -> results.ResultSpec:
    del shape_zyx  # A result subvolume is read at its corner.
    run_request.run_inference(request, [box])
    return results.single_result(request.segmentation_output_dir, box.start)


@dataclasses.dataclass(frozen=True)
class Validation:
  """What every checkpoint is scored on: a request, a box (xyz) and its groundtruth."""
  request: inference_pb2.InferenceRequest
  box: bounding_box.BoundingBox
  groundtruth: str
  voxel_size_xyz: tuple[float, float, float] = (10.0, 10.0, 10.0)
  erl: bool = True
  segmenter: Segmenter = dataclasses.field(default_factory=SingleRun)

  def key(self) -> dict[str, Any]:
    """What a scores file records of the validation, to refuse mixing scores of two."""
    return {'box_start_xyz': self.box.start.tolist(), 'box_size_xyz': self.box.size.tolist(),
            'groundtruth': self.groundtruth, 'voxel_size_xyz': list(self.voxel_size_xyz),
            'erl': self.erl, 'segmentation': self.segmenter.key()}


def checkpoint_step(prefix: str) -> int:
  """The training step in a checkpoint prefix's name (`model.ckpt-<step>`)."""
  step = checkpoint_lib.checkpoint_step(prefix)
  if step is None:
    raise SelectionError(f'checkpoint {prefix!r} names no step (expected a name ending in '
                         '-<step>, e.g. model.ckpt-1000)')
  return step


def find_checkpoints(checkpoints: Optional[Sequence[str]] = None,
                     train_dir: Optional[str] = None, every: int = 1) -> list[str]:
  """Checkpoint prefixes in step order: those listed, or every `every`-th one of `train_dir`."""
  if bool(checkpoints) == bool(train_dir):
    raise SelectionError('give either checkpoints or a train_dir, not both or neither')
  if every < 1:
    raise SelectionError(f'every must be a positive integer, got {every}')
  if checkpoints:
    if every != 1:
      raise SelectionError('every applies to a train_dir, not to a list of checkpoints')
    prefixes = [checkpoint_lib.resolve_checkpoint_path(p) for p in checkpoints]
  else:
    if not os.path.isdir(train_dir):
      raise SelectionError(f'train_dir {train_dir!r} is not a directory')
    prefixes = [p[:-len('.index')] for p in glob.glob(os.path.join(train_dir, '*.index'))]
    prefixes = [p for p in prefixes if checkpoint_lib.checkpoint_step(p) is not None]
    if not prefixes:
      raise SelectionError(f'no checkpoints (<name>-<step>.index) found in {train_dir!r}')
  # Absolute, so that a resumed run from another directory finds its scores.
  prefixes = sorted({os.path.abspath(p) for p in prefixes}, key=checkpoint_step)
  return prefixes[::every] if not checkpoints else prefixes


def _groundtruth_shape(validation: Validation) -> tuple[int, int, int]:
  """The zyx shape of the groundtruth volume."""
  with volumes.open_volume(validation.groundtruth, ndims=(3,)) as gt:
    return tuple(int(n) for n in gt.shape)


def check_validation(validation: Validation,
                     fov_xyz: Optional[Sequence[int]] = None) -> None:
  """Fails before any work on a bad request, or a box not inside the image and the groundtruth.

  With `fov_xyz`, the box must also hold one FOV of that size.
  """
  if validation.box.is_empty() or (validation.box.start < 0).any():
    raise SelectionError(f'validation box start={validation.box.start.tolist()} '
                         f'size={validation.box.size.tolist()} (xyz) is empty or negative')
  gt_box = bounding_box.BoundingBox(start=(0, 0, 0), size=_groundtruth_shape(validation)[::-1])
  if not gt_box.contains_box(validation.box):
    raise SelectionError(
        f'validation box start={validation.box.start.tolist()} '
        f'size={validation.box.size.tolist()} (xyz) is outside groundtruth '
        f'{validation.groundtruth} of size {gt_box.size.tolist()} (xyz)')
  if validation.erl:
    skeletons.check_voxel_size(validation.voxel_size_xyz)
  request = inference_pb2.InferenceRequest()
  request.CopyFrom(validation.request)
  # Replaced for each checkpoint; the check needs one (nothing is written there).
  request.segmentation_output_dir = request.segmentation_output_dir or 'per-checkpoint'
  runner = runner_lib.Runner()
  runner.prepare(request)  # Checks the request and opens its volumes.
  runner.inputs.check_box(validation.box.start_zyx, validation.box.size_zyx, fov_xyz)


def _segmentation_dir(output_dir: str, prefix: str) -> str:
  """Where one checkpoint's segmentation goes: a subdirectory named after the checkpoint."""
  return os.path.join(output_dir, os.path.basename(prefix))


class _Skeletons:
  """The groundtruth skeletons of the box, computed once for all checkpoints."""

  def __init__(self, voxel_size_xyz):
    self.voxel_size_xyz = voxel_size_xyz
    self.value = None

  def get(self, gt, start_xyz) -> skeletons.Skeletons:
    if self.value is None:
      self.value = skeletons.skeletonize_labels(gt, self.voxel_size_xyz,
                                                skeletons.KimimaroParams(), start_xyz)
    return self.value


def score_checkpoint(validation: Validation, prefix: str, output_dir: str,
                     skeleton_cache: Optional[_Skeletons] = None) -> dict[str, Any]:
  """Segments the validation box with `prefix` and scores it; returns one row of scores."""
  start = time.time()
  request = inference_pb2.InferenceRequest()
  request.CopyFrom(validation.request)
  request.model_checkpoint_path = prefix
  request.segmentation_output_dir = _segmentation_dir(output_dir, prefix)
  source = validation.segmenter.segment(request, validation.box, _groundtruth_shape(validation))
  result, seg, gt = evaluation.evaluate(source, validation.groundtruth, validation.box)
  row = {'checkpoint': prefix, 'step': checkpoint_step(prefix),
         'segmentation_dir': request.segmentation_output_dir,
         'segmentation': result.inputs['segmentation'],
         'vi_split': result.vi_split, 'vi_merge': result.vi_merge,
         'vi_total': result.vi_total, 'adapted_rand_error': result.adapted_rand_error,
         'num_segments': result.num_segments, 'erl_nm': None, 'max_erl_nm': None}
  if validation.erl:
    cache = skeleton_cache or _Skeletons(validation.voxel_size_xyz)
    metrics = skeletons.evaluate_skeletons(cache.get(gt, result.box['start_xyz']), seg,
                                           validation.voxel_size_xyz, result.box['start_xyz'])
    row['erl_nm'] = metrics.erl if math.isfinite(metrics.erl) else None
    row['max_erl_nm'] = metrics.max_erl if math.isfinite(metrics.max_erl) else None
  row['seconds'] = time.time() - start
  return row


@dataclasses.dataclass
class Selection:
  """The scores of all checkpoints asked for, the best by `metric`, and which were new."""
  rows: list[dict[str, Any]]
  metric: str
  best: Optional[dict[str, Any]]
  scored: list[str]  # Checkpoints segmented and scored by this run.
  reused: list[str]  # Checkpoints whose scores were already in the scores file.


def best_row(rows: Sequence[dict[str, Any]], metric: str) -> Optional[dict[str, Any]]:
  """The row best by `metric` (rows without a value for it are passed over)."""
  if metric not in METRICS:
    raise SelectionError(f'metric {metric!r} is not one of {", ".join(METRICS)}')
  valued = [r for r in rows if r.get(metric) is not None]
  if not valued:
    return None
  sign = -1.0 if METRICS[metric] else 1.0
  # Ties go to the earlier step: the same quality for less training.
  return min(valued, key=lambda r: (sign * r[metric], r['step']))


def _read_scores(path: str, validation: Validation) -> dict[str, dict[str, Any]]:
  """The rows of an existing scores file (by checkpoint); refuses one of another validation."""
  if not os.path.exists(path):
    return {}
  try:
    with open(path) as f:
      data = json.load(f)
    recorded, rows = data['validation'], data['checkpoints']
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise SelectionError(f'cannot read scores file {path}: {e}') from e
  if recorded != validation.key():
    raise SelectionError(f'scores file {path} holds scores of another validation ({recorded}); '
                         f'use another output directory for {validation.key()}')
  return {row['checkpoint']: row for row in rows}


def _write_scores(path: str, validation: Validation, rows: dict[str, dict[str, Any]],
                  metric: str) -> None:
  """Writes all rows so far (atomically), with the best by `metric`."""
  ordered = sorted(rows.values(), key=lambda r: r['step'])
  best = best_row(ordered, metric)
  data = {'validation': validation.key(), 'metric': metric,
          'higher_is_better': METRICS[metric],
          'best': best['checkpoint'] if best else None, 'checkpoints': ordered}
  atomic.atomic_write_text(path, json.dumps(data, indent=2) + '\n')


def select_checkpoints(validation: Validation, prefixes: Sequence[str], output_dir: str,
                       metric: str = 'vi_total',
                       on_scored: Callable[[dict[str, Any]], None] = lambda row: None,
                       stop_requested: Callable[[], bool] = lambda: False) -> Selection:
  """Scores each checkpoint not yet in the scores file, writes the file and the plot.

  `on_scored(row)` is called for each newly scored checkpoint (e.g. to write
  TensorBoard scalars). The scores file is rewritten after each checkpoint, so
  an interrupted run resumes where it stopped.
  """
  best_row([], metric)  # Checks the metric name before any work.
  if not prefixes:
    raise SelectionError('no checkpoints to score')
  check_validation(validation)
  os.makedirs(output_dir, exist_ok=True)
  path = os.path.join(output_dir, SCORES_FILE)
  rows = _read_scores(path, validation)
  cache = _Skeletons(validation.voxel_size_xyz)
  scored, reused = [], []
  for prefix in prefixes:
    if prefix in rows:
      reused.append(prefix)
      continue
    if stop_requested():
      raise errors.Interrupted(f'scores so far are in {path}')
    logging.info('scoring checkpoint %s (step %d)', prefix, checkpoint_step(prefix))
    row = score_checkpoint(validation, prefix, output_dir, cache)
    rows[prefix] = row
    scored.append(prefix)
    _write_scores(path, validation, rows, metric)
    on_scored(row)
  if not scored:
    _write_scores(path, validation, rows, metric)  # Records a change of metric.
  chosen = sorted((rows[p] for p in prefixes), key=lambda r: r['step'])
  best = best_row(chosen, metric)
  checkpoint_plot.write_metric_plot(os.path.join(output_dir, PLOT_FILE), chosen, metric, best)
  return Selection(chosen, metric, best, scored, reused)


def _number(value, digits: int) -> str:
  return '-' if value is None else f'{value:.{digits}f}'


def format_table(selection: Selection) -> str:
  """A text table of the scores, one checkpoint a line, the best marked with '*'."""
  lines = [f'{"":1} {"step":>10} {"VI split":>9} {"VI merge":>9} {"VI total":>9} '
           f'{"ARE":>7} {"ERL nm":>9} {"segments":>8}  checkpoint']
  for row in selection.rows:
    mark = '*' if selection.best is not None and row is selection.best else ' '
    lines.append(f'{mark} {row["step"]:>10} {_number(row["vi_split"], 4):>9} '
                 f'{_number(row["vi_merge"], 4):>9} {_number(row["vi_total"], 4):>9} '
                 f'{_number(row["adapted_rand_error"], 4):>7} {_number(row["erl_nm"], 0):>9} '
                 f'{row["num_segments"]:>8}  {row["checkpoint"]}')
  better = 'higher' if METRICS[selection.metric] else 'lower'
  if selection.best is None:
    lines.append(f'no checkpoint has a value of {selection.metric}')
  else:
    lines.append(f'* best by {selection.metric} ({better} is better): '
                 f'{selection.best["checkpoint"]} (step {selection.best["step"]})')
  return '\n'.join(lines)
