"""Where the FFN field of view goes next: movement policies and restrictors.

All positions, offsets and deltas in this module are zyx.
"""

from __future__ import annotations

import collections
import functools
import importlib
import json
import weakref
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ffn.utils import probability

Position = tuple[int, int, int]


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


class BaseMovementPolicy:
  """A queue of candidate FOV positions fed by the predictions of the FFN."""

  def __init__(self, canvas, scored_coords, deltas: Sequence[int]):
    # A proxy, so that the canvas (which owns the policy) can be collected.
    self.canvas = weakref.proxy(canvas) if canvas is not None else None
    self.scored_coords = scored_coords
    self.deltas = np.asarray(deltas, dtype=np.int64)

  def __len__(self) -> int:
    return len(self.scored_coords)

  def __iter__(self):
    return self

  def __next__(self) -> Position:
    raise StopIteration()

  def append(self, item) -> None:
    """Queues a (score, zyx position) candidate."""
    self.scored_coords.append(item)

  def update(self, prob_map: np.ndarray, position: Position) -> None:
    """Takes note of the logits predicted by the FFN with its FOV at `position`."""
    raise NotImplementedError()

  def get_state(self) -> Any:
    """The state of the policy as a picklable object."""
    raise NotImplementedError()

  def restore_state(self, state: Any) -> None:
    """Restores a state returned by `get_state`."""
    raise NotImplementedError()

  def reset_state(self, start_pos: Position) -> None:
    """Forgets everything and prepares to segment an object seeded at `start_pos`."""
    raise NotImplementedError()


class FaceMaxMovementPolicy(BaseMovementPolicy):
  """Breadth-first moves to the maxima of the prediction's cuboid faces."""

  def __init__(self, canvas, deltas: Sequence[int] = (4, 8, 8),
               score_threshold: float = 0.9):
    super().__init__(canvas, collections.deque(), deltas)
    self.score_threshold = score_threshold
    self.done_rounded_coords: set[Position] = set()
    self._start_pos = (0, 0, 0)
    # Plain ints: quantize_pos runs several times per FOV.
    self._step = tuple(max(int(d), 1) for d in self.deltas)
    self._half_delta = tuple(int(d) // 2 for d in self.deltas)

  def reset_state(self, start_pos: Position) -> None:
    self.scored_coords = collections.deque()
    self.done_rounded_coords = set()
    self._start_pos = tuple(int(p) for p in start_pos)

  def get_state(self) -> list:
    return [(self.scored_coords, self.done_rounded_coords, self._start_pos)]

  def restore_state(self, state) -> None:
    entry = state[0]
    self.scored_coords = collections.deque(entry[0])
    self.done_rounded_coords = set(entry[1])
    if len(entry) > 2:  # 2019 checkpoints did not record the start position.
      self._start_pos = tuple(int(p) for p in entry[2])

  def quantize_pos(self, pos: Sequence[int]) -> Position:
    """The cell of `pos` on a grid of spacing `deltas` centred on the object's seed."""
    return tuple((int(p) - s + h) // step for p, s, h, step in
                 zip(pos, self._start_pos, self._half_delta, self._step))

  def __next__(self) -> Position:
    while self.scored_coords:
      _, coord = self.scored_coords.popleft()
      coord = tuple(int(c) for c in coord)
      if self.quantize_pos(coord) in self.done_rounded_coords:
        continue
      # The validity check reads the seed as it is now, not as it was when the
      # candidate was queued.
      if self.canvas.is_valid_pos(coord):
        return coord
    raise StopIteration()

  def update(self, prob_map: np.ndarray, position: Position) -> None:
    self.done_rounded_coords.add(self.quantize_pos(position))
    moves = sorted(get_scored_move_offsets(self.deltas, prob_map,
                                           threshold=self.score_threshold),
                   reverse=True)
    for score, offset in moves:
      self.scored_coords.append(
          (score, tuple(int(p + o) for p, o in zip(position, offset))))


def _import_symbol(name: str):
  """Resolves a dotted `module.symbol` path."""
  module_name, _, symbol = name.rpartition('.')
  if not module_name:
    raise ValueError(f'movement_policy_name {name!r}: not a class in '
                     'ffn.inference.movement nor a dotted module.Class path')
  try:
    module = importlib.import_module(module_name)
    return getattr(module, symbol)
  except (ImportError, AttributeError) as e:
    raise ValueError(f'movement_policy_name {name!r} cannot be imported: {e}') from e


def policy_class(name: str) -> type:
  """The movement policy class named `name` here or by a dotted path (default FaceMax)."""
  if not name:
    return FaceMaxMovementPolicy
  policy_cls = globals().get(name)
  if isinstance(policy_cls, type) and issubclass(policy_cls, BaseMovementPolicy):
    return policy_cls
  return _import_symbol(name)


def get_policy_fn(request, model_info) -> Callable[[Any], BaseMovementPolicy]:
  """Returns canvas -> movement policy, as configured by an InferenceRequest.

  `model_info` is anything with an xyz `deltas` attribute (the model or its info).
  """
  policy_cls = policy_class(request.movement_policy_name)

  kwargs = {}
  if request.movement_policy_args:
    try:
      kwargs = json.loads(request.movement_policy_args)
    except json.JSONDecodeError as e:
      raise ValueError(f'movement_policy_args is not valid JSON: '
                       f'{request.movement_policy_args!r} ({e})') from e
    if not isinstance(kwargs, dict):
      raise ValueError('movement_policy_args must be a JSON object, got '
                       f'{request.movement_policy_args!r}')
  kwargs.setdefault('deltas', tuple(int(d) for d in np.asarray(model_info.deltas)[::-1]))
  kwargs.setdefault('score_threshold',
                    float(probability.logit(request.inference_options.move_threshold)))
  return lambda canvas: policy_cls(canvas, **kwargs)


class MovementRestrictor:
  """Keeps the FOV (and seeds) out of masked or badly aligned areas."""

  def __init__(self, mask: np.ndarray | None = None,
               shift_mask: np.ndarray | None = None, shift_mask_fov=None,
               shift_mask_threshold: int = 4, shift_mask_scale: int = 1,
               seed_mask: np.ndarray | None = None):
    """`mask`/`seed_mask`: zyx booleans, true = excluded.

    `shift_mask`: (2, z, y, x) shift field at `shift_mask_scale` xy
    downsampling; FOVs whose `shift_mask_fov` (BoundingBox, xyz, relative to
    the position) contains a shift >= `shift_mask_threshold` are excluded.
    """
    self.mask = mask
    self.seed_mask = seed_mask
    self.shift_mask = None
    self._shift_mask_scale = int(shift_mask_scale)
    if shift_mask is not None:
      if shift_mask_fov is None:
        raise ValueError('shift_mask_fov is required with a shift_mask')
      self.shift_mask = np.max(np.abs(shift_mask), axis=0) >= shift_mask_threshold
      self._fov_low = np.asarray(shift_mask_fov.start, dtype=np.int64)[::-1]
      self._fov_high = np.asarray(shift_mask_fov.end, dtype=np.int64)[::-1] - 1

  def is_valid_seed(self, pos: Position) -> bool:
    """False if `pos` is excluded as a seed."""
    return not (self.seed_mask is not None and self.seed_mask[pos])

  def is_valid_pos(self, pos: Position) -> bool:
    """False if the FOV may not be placed at `pos`."""
    if self.mask is not None and self.mask[pos]:
      return False
    if self.shift_mask is not None:
      p = np.asarray(pos, dtype=np.int64)
      low = np.maximum(p + self._fov_low, 0)
      high = p + self._fov_high
      s = self._shift_mask_scale
      # z is not downsampled in the shift mask.
      window = self.shift_mask[low[0]:high[0] + 1,
                               low[1] // s:high[1] // s + 1,
                               low[2] // s:high[2] // s + 1]
      if np.any(window):
        return False
    return True
