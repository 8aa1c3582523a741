"""EvalTracker: quality of the final object masks of training examples, as summaries."""

from __future__ import annotations

import collections
from typing import Sequence

import numpy as np

from ffn.training import summaries
from ffn.utils import probability

_MAX_IMAGES = 16


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

  def __init__(self, eval_shape_zyx: Sequence[int], threshold: float = 0.9):
    self.eval_shape_zyx = tuple(int(s) for s in eval_shape_zyx)
    self.threshold_logit = float(probability.logit_float32(threshold))
    self.reset()

  def reset(self) -> None:
    """Clears all counts and images."""
    self.loss = 0.0
    self.num_patches = 0
    self.tp = self.tn = self.fp = self.fn = 0
    self.total_voxels = 0
    self.masked_voxels = 0
    self.images = {plane: collections.deque(maxlen=_MAX_IMAGES) for plane, _ in self._PLANES}

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
        'masked_voxel_fraction': self.masked_voxels / self.total_voxels,
        'eval/patch_loss': self.loss / self.num_patches,
        'eval/patches': float(self.num_patches),
        'eval/accuracy': (self.tp + self.tn) / (self.tp + self.tn + self.fp + self.fn),
        'eval/precision': precision,
        'eval/recall': recall,
        'eval/specificity': self.tn / max(self.tn + self.fp, 1),
        'eval/f1': f1,
    }

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
