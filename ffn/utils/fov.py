"""Field-of-view geometry: where the FOV may move, from the predicted object map."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from ffn.utils.axes import Position


def get_scored_move_offsets(deltas_zyx: Sequence[int], prob_map: np.ndarray,
                            threshold: float = 0.9
                            ) -> Iterator[tuple[float, Position]]:
  """Yields unique (score, offset_zyx) moves to the maxima of the ±delta cuboid faces.

  The score is the value of `prob_map` at the face maximum (first occurrence in
  C order); faces whose maximum is below `threshold` give no move. Offsets are
  relative to the centre of `prob_map`. The yield order is z-, z+, y-, y+, x-,
  x+ and carries no meaning; callers sort.
  """
  center = np.asarray(prob_map.shape) // 2
  deltas_zyx = [int(d) for d in deltas_zyx]
  window = [slice(c - d, c + d + 1) for c, d in zip(center, deltas_zyx)]
  seen = set()
  for axis, delta in enumerate(deltas_zyx):
    if delta == 0:
      continue
    for step in (-delta, delta):
      face_index = list(window)
      face_index[axis] = int(center[axis] + step)
      face = prob_map[tuple(face_index)]
      flat = int(np.argmax(face))
      in_plane = np.unravel_index(flat, face.shape)
      score = face.flat[flat]
      if score < threshold:
        continue
      offset = [int(in_plane[0] - face.shape[0] // 2),
                int(in_plane[1] - face.shape[1] // 2)]
      offset.insert(axis, step)
      move = (score, tuple(offset))
      if move not in seen:
        seen.add(move)
        yield move
