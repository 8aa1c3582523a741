"""Saving and restoring a Canvas's inference state (`.cpoint` npz files).

A checkpoint holds everything needed to continue a run and get exactly the
result of an uninterrupted one, including an object in flight: the seed, the
movement queue, the visited extents, the number of FOVs already run for it and
a seed-policy position pointing back at its seed. The keys of 2019's
checkpoints are a subset, so those load too (without the object in flight).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np

from ffn.inference import results
from ffn.utils import atomic
from ffn.utils import state_codec

# Namedtuples kept by name in the stored state.
_NAMED = {'OriginInfo': results.OriginInfo}
_REQUIRED_KEYS = ('segmentation', 'seed', 'history', 'history_deleted', 'movement_policy',
                  'seed_policy_state', 'counters', 'origins')


@dataclasses.dataclass
class CanvasState:
  """The state of a Canvas a checkpoint holds; None marks what a 2019 checkpoint lacks."""
  segmentation: np.ndarray
  seed: np.ndarray
  seg_prob: Optional[np.ndarray]
  origins: dict
  overlaps: Optional[dict]
  history: list
  history_deleted: list
  max_id: Optional[int]
  min_pos: Optional[np.ndarray]
  max_pos: Optional[np.ndarray]
  global_to_local_ids: Optional[dict]
  movement_policy_state: Any
  seed_policy_state: Any
  counters: str


def _as_object(value) -> np.ndarray:
  """Any container state as a 0-d string array of tagged JSON, so npz stores it without pickles."""
  return np.asarray(state_codec.dumps(value, _NAMED))


def _unwrap(array: np.ndarray):
  """Inverse of `_as_object`; also reads older pickled values (already unpickled safely)."""
  if array.dtype.kind == 'U' and array.shape == ():
    return state_codec.loads(str(array), _NAMED)
  if array.dtype == object and array.shape == ():
    return array.item()
  if array.dtype == object:
    return tuple(array)
  return array


def save(canvas, path: str, partial_segment_iters: int = 0,
         seed_pending: bool = False) -> None:
  """Writes the state of `canvas` to `path` atomically.

  `partial_segment_iters` > 0 marks an object in flight, `seed_pending` a seed
  taken from the seed policy but not yet processed; both make the saved
  seed-policy position point back at that seed.
  """
  state = canvas.state(rewind_seed=bool(partial_segment_iters > 0 or seed_pending))
  arrays = dict(
      movement_policy=_as_object(state.movement_policy_state),
      segmentation=state.segmentation,
      seed=state.seed,
      origins=_as_object(state.origins),
      overlaps=_as_object(state.overlaps),
      min_pos=np.asarray(state.min_pos),
      max_pos=np.asarray(state.max_pos),
      max_id=np.int64(state.max_id),
      history=_as_object(list(state.history)),
      history_deleted=np.asarray(state.history_deleted, dtype=np.int64),
      seed_policy_state=_as_object(state.seed_policy_state),
      counters=np.asarray(state.counters),
      partial_segment_iters=np.int64(partial_segment_iters),
      global_to_local_ids=_as_object(state.global_to_local_ids),
  )
  if state.seg_prob is not None:
    arrays['seg_qprob'] = state.seg_prob
  with atomic.atomic_open(path, 'wb') as f:
    np.savez_compressed(f, **arrays)


def _optional(data, key: str, convert):
  """`convert(data[key])`, or None when the checkpoint has no `key`."""
  return convert(data[key]) if key in data else None


def load(path: str) -> tuple[CanvasState, int]:
  """The CanvasState saved at `path` and its partial_segment_iters."""
  with results.open_npz(path) as data:
    for key in _REQUIRED_KEYS:
      if key not in data:
        raise ValueError(f'{path} is not an inference checkpoint (no {key!r} entry); '
                         'remove it to start this subvolume afresh')
    history = _unwrap(data['history'])
    state = CanvasState(
        segmentation=data['segmentation'],
        seed=data['seed'],
        seg_prob=_optional(data, 'seg_qprob', np.asarray),
        origins=dict(_unwrap(data['origins'])),
        overlaps=_optional(data, 'overlaps', lambda v: dict(_unwrap(v))),
        history=[tuple(h) for h in history] if history is not None else [],
        history_deleted=[int(v) for v in np.asarray(data['history_deleted']).ravel()],
        max_id=_optional(data, 'max_id', int),
        min_pos=_optional(data, 'min_pos', lambda v: np.asarray(v, dtype=np.int64)),
        max_pos=_optional(data, 'max_pos', lambda v: np.asarray(v, dtype=np.int64)),
        global_to_local_ids=_optional(data, 'global_to_local_ids',
                                      lambda v: dict(_unwrap(v))),
        movement_policy_state=_unwrap(data['movement_policy']),
        seed_policy_state=_unwrap(data['seed_policy_state']),
        counters=str(data['counters']),
    )
    partial = _optional(data, 'partial_segment_iters', int) or 0
  return state, partial


def restore(canvas, path: str) -> int:
  """Loads the state saved at `path` into `canvas`; returns its partial_segment_iters."""
  state, partial = load(path)
  saved_shape = tuple(state.segmentation.shape)
  if saved_shape != tuple(canvas.segmentation.shape):
    raise ValueError(f'{path} is a checkpoint of a box of shape {saved_shape[::-1]} (xyz), '
                     f'but this box is {tuple(canvas.segmentation.shape)[::-1]}; remove it '
                     'to start this subvolume afresh')
  canvas.load_state(state)
  return partial
