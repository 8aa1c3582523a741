"""EvalTracker: quality of the final object masks of training examples, as summaries."""

from __future__ import annotations

import collections
from typing import Sequence

import numpy as np

from ffn.training import summaries
from ffn.utils import probability

_MAX_IMAGES = 16
_CORRECT, _MISSED, _SPURIOUS = range(3)
_MOVE_KINDS = ('correct', 'missed', 'spurious')


def move_radius(offset_xyz: Sequence[int]) -> int:
  """The length of a FOV move, rounded down to whole voxels."""
  return int(np.linalg.norm(np.asarray(offset_xyz, np.float64)))


def _move_fractions(prefix: str, counts: np.ndarray) -> dict[str, float]:
  """`prefix`/correct, /missed and /spurious as fractions of all counted moves."""
  total = max(int(counts.sum()), 1)
  return {f'{prefix}/{kind}': counts[i] / total for i, kind in enumerate(_MOVE_KINDS)}


def center_crop(array: np.ndarray, size_zyx: Sequence[int]) -> np.ndarray:
  """The centred `size_zyx` part of a [z, y, x, c] array."""
  index = tuple(slice(s // 2 - c // 2, s // 2 - c // 2 + c)
                for s, c in zip(array.shape[:3], size_zyx))
  return array[index]


def sigmoid_xent(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Element-wise sigmoid cross-entropy, stable for large |logits|."""
  return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))


def center_slice_image(labels, probs, weights, axis: int) -> np.ndarray:
  """The centre slice across zyx `axis` of [labels | probs | weights], as uint8 [h, 3w, 1]."""
  parts = []
  for a in (labels, probs, weights):
    index = [slice(None)] * 3 + [0]
    index[axis] = a.shape[axis] // 2
    parts.append(a[tuple(index)])
  image = np.clip(np.concatenate(parts, axis=1), 0.0, 1.0) * 255
  return image.astype(np.uint8)[..., np.newaxis]


class EvalTracker:
  """Accumulates per-voxel statistics of finished training examples between summaries."""

  # Tag suffixes name the plane: the z-centre slice shows x and y, and so on.
  _PLANES = (('xy', 0), ('xz', 1), ('yz', 2))

  def __init__(self, eval_shape_zyx: Sequence[int], threshold: float = 0.9,
               shifts: Sequence[Sequence[int]] = ()):
    """`shifts` (xyz FOV moves) give the move radii that moves are also counted by."""
    self.eval_shape_zyx = tuple(int(s) for s in eval_shape_zyx)
    self.threshold_logit = float(probability.logit_float32(threshold))
    self.radii = sorted({0} | {move_radius(s) for s in shifts})
    self.reset()

  def reset(self) -> None:
    """Clears all counts and images."""
    self.loss = 0.0
    self.num_patches = 0
    self.tp = self.tn = self.fp = self.fn = 0
    self.total_voxels = 0
    self.masked_voxels = 0
    self.images = {plane: collections.deque(maxlen=_MAX_IMAGES) for plane, _ in self._PLANES}
    # [correct, missed, spurious] FOV moves, in all and by move radius.
    self.moves = np.zeros(3, np.int64)
    self.moves_by_radius = {r: np.zeros(3, np.int64) for r in self.radii}
    self.fov_voxels = self.fov_masked_voxels = 0
    self.fov_weight_sum = 0.0

  def record_move(self, wanted: bool, executed: bool, offset_xyz: Sequence[int]) -> None:
    """Counts one FOV move: wanted by the labels, executed by the prediction, or both."""
    if not (wanted or executed):
      return
    kind = _CORRECT if wanted and executed else (_MISSED if wanted else _SPURIOUS)
    radius = move_radius(offset_xyz)
    if radius not in self.moves_by_radius:
      raise ValueError(f'move {list(offset_xyz)} has radius {radius}, not one of {self.radii}')
    self.moves[kind] += 1
    self.moves_by_radius[radius][kind] += 1

  def track_weights(self, weights: np.ndarray) -> None:
    """Counts the loss weights of one batch of FOVs (zero weight: masked)."""
    weights = np.asarray(weights)
    self.fov_voxels += weights.size
    self.fov_masked_voxels += int(np.sum(weights == 0))
    self.fov_weight_sum += float(np.sum(weights))

  def add_patch(self, labels: np.ndarray, logits: np.ndarray, weights: np.ndarray) -> None:
    """Adds one finished example: soft labels, canvas logits and loss weights, [z, y, x, 1]."""
    labels = center_crop(labels, self.eval_shape_zyx)
    logits = center_crop(logits, self.eval_shape_zyx)
    weights = center_crop(weights, self.eval_shape_zyx)
    self.loss += float(np.mean(sigmoid_xent(logits, labels)))
    self.total_voxels += labels.size
    self.masked_voxels += int(np.sum(weights == 0))
    predicted = logits >= self.threshold_logit
    truth = labels > 0.5
    self.tp += int(np.sum(predicted & truth))
    self.fp += int(np.sum(predicted & ~truth))
    self.fn += int(np.sum(~predicted & truth))
    self.tn += int(np.sum(~predicted & ~truth))
    self.num_patches += 1
    probs = probability.expit(logits)
    for plane, axis in self._PLANES:
      self.images[plane].append(center_slice_image(labels, probs, weights, axis))

  def scalars(self) -> dict[str, float]:
    """The summary scalars; empty when nothing was added since the last reset."""
    if not self.total_voxels:
      return {}
    precision = self.tp / max(self.tp + self.fp, 1)
    recall = self.tp / max(self.tp + self.fn, 1)
    f1 = (2 * precision * recall / (precision + recall)) if precision + recall else float('nan')
    return {
        **self._move_scalars(),
        'masked_voxel_fraction': self.masked_voxels / self.total_voxels,
        'eval/patch_loss': self.loss / self.num_patches,
        'eval/patches': float(self.num_patches),
        'eval/accuracy': (self.tp + self.tn) / (self.tp + self.tn + self.fp + self.fn),
        'eval/precision': precision,
        'eval/recall': recall,
        'eval/specificity': self.tn / max(self.tn + self.fp, 1),
        'eval/f1': f1,
    }

  def _move_scalars(self) -> dict[str, float]:
    """FOV weight statistics and the fractions of correct, missed and spurious moves."""
    out = {
        'fov/masked_voxel_fraction': self.fov_masked_voxels / max(self.fov_voxels, 1),
        'fov/average_weight': self.fov_weight_sum / max(self.fov_voxels, 1),
        'moves/total': float(max(self.moves.sum(), 1)),
    }
    out.update(_move_fractions('moves/all', self.moves))
    for radius, counts in self.moves_by_radius.items():
      out.update(_move_fractions(f'moves/r={radius}', counts))
      out[f'moves/r={radius}/total'] = float(max(counts.sum(), 1))
    return out

  def write_summaries(self, step: int) -> dict[str, float]:
    """Writes scalars and centre-slice images to the default summary writer, then resets."""
    scalars = self.scalars()
    for tag, value in scalars.items():
      summaries.scalar(tag, value, step)
    for plane, images in self.images.items():
      for i, image in enumerate(images):
        summaries.image(f'final_{plane}/{i}', image, step)
    self.reset()
    return scalars
