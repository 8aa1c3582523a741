"""Field-of-view geometry: where the FOV may move, from the predicted object map."""

from __future__ import annotations

import functools
from typing import Iterator, Sequence

import numpy as np

from ffn.utils.axes import Position


@functools.lru_cache(maxsize=16)
def _face_table(shape: tuple[int, ...], deltas_zyx: tuple[int, ...]):
  """Flat indices of the ±delta cuboid faces of a `shape` array, one padded row per face.

  Returns (faces, index): `faces` lists (axis, step, face shape) in the order
  z-, z+, y-, y+, x-, x+ (axes with delta 0 left out); row i of `index` holds
  the C-order flat indices of face i, padded at the end with its first index so
  that a row's first maximum is the face's first maximum.
  """
  center = [s // 2 for s in shape]
  window = [np.arange(c - d, c + d + 1) for c, d in zip(center, deltas_zyx)]
  faces, rows = [], []
  for axis, delta in enumerate(deltas_zyx):
    if delta == 0:
      continue
    for step in (-delta, delta):
      axes = list(window)
      axes[axis] = np.array([center[axis] + step])
      flat = np.ravel_multi_index(np.meshgrid(*axes, indexing='ij'), shape).ravel()
      in_plane = tuple(len(w) for i, w in enumerate(window) if i != axis)
      faces.append((axis, step, in_plane))
      rows.append(flat)
  width = max((len(r) for r in rows), default=0)
  index = np.array([np.pad(r, (0, width - len(r)), mode='edge') for r in rows],
                   dtype=np.intp).reshape(len(rows), width)
  return faces, index


def get_scored_move_offsets(deltas_zyx: Sequence[int], prob_map: np.ndarray,
                            threshold: float = 0.9
                            ) -> Iterator[tuple[float, Position]]:
  """Yields unique (score, offset_zyx) moves to the maxima of the ±delta cuboid faces.

  The score is the value of `prob_map` at the face maximum (first occurrence in
  C order); faces whose maximum is below `threshold` give no move. Offsets are
  relative to the centre of `prob_map`. The yield order is z-, z+, y-, y+, x-,
  x+ and carries no meaning; callers sort.
  """
  faces, index = _face_table(tuple(int(s) for s in prob_map.shape),
                             tuple(int(d) for d in deltas_zyx))
  if not faces:
    return
  # One gather and one argmax for all faces: this runs once per FOV.
  values = prob_map.ravel()[index]
  best = values.argmax(axis=1)
  scores = values[np.arange(len(faces)), best]
  seen = set()
  for (axis, step, (rows, cols)), flat, score in zip(faces, best.tolist(), scores):
    if score < threshold:
      continue
    row, col = divmod(flat, cols)
    offset = [row - rows // 2, col - cols // 2]
    offset.insert(axis, step)
    move = (score, tuple(offset))
    if move not in seen:
      seen.add(move)
      yield move
