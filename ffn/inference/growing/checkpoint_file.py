"""Saving and restoring a Canvas's inference state (`.cpoint` npz files).

A checkpoint holds everything needed to continue a run and get exactly the
result of an uninterrupted one, including an object in flight: the seed, the
movement queue, the visited extents, the number of FOVs already run for it and
a seed-policy position pointing back at its seed. The keys of 2019's
checkpoints are a subset, so those load too (without the object in flight).
This port also stores the settings the state was made with (`request`, the
serialised InferenceRequest the canvas was given), so that a resume under
other settings can be refused.

A checkpoint file is data from disk: `load` checks every entry (dtype, shape,
structure) and any failure is a ResultFileError naming the file.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

import numpy as np

from ffn.inference.io import results
from ffn.utils import atomic
from ffn.utils import errors
from ffn.utils import state_codec

_REQUIRED_KEYS = ('segmentation', 'seed', 'history', 'history_deleted', 'movement_policy',
                  'seed_policy_state', 'counters', 'origins')
# Bytes a checkpoint may hold beyond its arrays (queues, origins, counters as JSON).
_STATE_BYTES = 256 << 20


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
  return np.asarray(state_codec.dumps(value, results.STATE_NAMED))


def _unwrap(array: np.ndarray):
  """Inverse of `_as_object`; also reads older pickled values (already unpickled safely)."""
  if array.dtype.kind == 'U' and array.shape == ():
    return state_codec.loads(str(array), results.STATE_NAMED)
  if array.dtype == object and array.shape == ():
    return array.item()
  if array.dtype == object:
    return tuple(array)
  return array


def save(canvas, path: str, partial_segment_iters: int = 0,
         seed_pending: bool = False) -> None:
  """Writes the state of `canvas` (and its `checkpoint_request`) to `path` atomically.

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
  if getattr(canvas, 'checkpoint_request', b''):
    arrays['request'] = np.bytes_(canvas.checkpoint_request)
  with atomic.atomic_open(path, 'wb') as f:
    np.savez_compressed(f, **arrays)


def saved_request(path: str) -> Optional[bytes]:
  """The serialised request a checkpoint was made with; None for checkpoints without one."""
  with results.open_npz(path, max_bytes=_STATE_BYTES) as data:
    if 'request' not in data:
      return None
    # tobytes, not item: numpy drops trailing zero bytes of 'S' scalars.
    return data['request'].tobytes()


# ----------------------------------------------------------------------------
# Checks of what a file holds: each raises ValueError or TypeError on a bad value.


def _array(value: np.ndarray, kinds: str, shape) -> np.ndarray:
  if value.dtype.kind not in kinds or tuple(value.shape) != tuple(shape):
    raise ValueError(f'a {value.dtype} array of shape {tuple(value.shape)[::-1]} (xyz); '
                     f'expected shape {tuple(shape)[::-1]}')
  return value


def _int(value) -> int:
  value = np.asarray(value)
  if value.dtype.kind not in 'iu' or value.size != 1:
    raise ValueError(f'{value!r} is not an integer')
  return int(value.reshape(()))


def _position(value) -> tuple[int, int, int]:
  position = tuple(int(v) for v in value)
  if len(position) != 3:
    raise ValueError(f'{value!r} is not a zyx position')
  return position


def _int_dict(value) -> dict:
  if not isinstance(value, dict):
    raise TypeError(f'a {type(value).__name__}, expected a dict')
  return {int(k): int(v) for k, v in value.items()}


def _overlaps(value) -> dict:
  if not isinstance(value, dict):
    raise TypeError(f'a {type(value).__name__}, expected a dict')
  return {int(k): np.asarray(v, dtype=np.int64).reshape(2, -1) for k, v in value.items()}


def _seed_policy_state(value, shape) -> Any:
  """A seed policy's (coords, idx), coords an (N, 3) zyx array inside the box, idx in 0..N."""
  if value is None:
    return None
  coords, idx = value
  idx = int(idx)
  if coords is None:
    return None, idx
  coords = np.asarray(coords)
  if coords.dtype.kind not in 'iu' or coords.ndim != 2 or coords.shape[1] != 3:
    raise ValueError(f'seed coordinates are a {coords.dtype} array of shape {coords.shape}, '
                     'expected (N, 3) integers')
  if not 0 <= idx <= len(coords):
    raise ValueError(f'seed index {idx} lies outside the {len(coords)} seeds')
  if len(coords) and (coords.min() < 0 or np.any(coords.max(axis=0) >= np.asarray(shape))):
    raise ValueError('seed coordinates lie outside the box')
  return coords.astype(np.int64), idx


def _counters(value: np.ndarray) -> str:
  text = str(value)
  parsed = json.loads(text)
  if not isinstance(parsed, dict) or not all(
      isinstance(v, (int, float)) and not isinstance(v, bool) for v in parsed.values()):
    raise ValueError('counters are not a JSON object of numbers')
  return text


def _entry(data, key: str, check, *args):
  """`check(data[key], *args)`, or None when the checkpoint has no `key`."""
  if key not in data:
    return None
  try:
    return check(data[key], *args)
  except (ValueError, TypeError, KeyError, IndexError, OverflowError) as e:
    if isinstance(e, errors.FFNError) and data.path in str(e):
      raise
    raise results.ResultFileError(f"{data.path} (entry '{key}') is not a valid inference "
                                  f'checkpoint entry: {e}; remove the file to start this '
                                  'subvolume afresh') from None


def load(path: str, shape_zyx=None) -> tuple[CanvasState, int]:
  """The CanvasState saved at `path` and its partial_segment_iters, every entry checked.

  `shape_zyx` is the box the state must be of (default: that of its segmentation).
  """
  voxels = None if shape_zyx is None else int(np.prod(shape_zyx))
  max_bytes = None if voxels is None else 8 * voxels + _STATE_BYTES
  with results.open_npz(path, max_bytes=max_bytes) as data:
    for key in _REQUIRED_KEYS:
      if key not in data:
        raise results.ResultFileError(f'{path} is not an inference checkpoint (no {key!r} '
                                      'entry); remove it to start this subvolume afresh')
    segmentation = _entry(data, 'segmentation', lambda v: results.check_segmentation_array(
        v, 'the segmentation'))
    if shape_zyx is not None and tuple(segmentation.shape) != tuple(shape_zyx):
      raise results.ResultFileError(
          f'{path} is a checkpoint of a box of shape {tuple(segmentation.shape)[::-1]} (xyz), '
          f'but this box is {tuple(shape_zyx)[::-1]}; remove it to start this subvolume afresh')
    shape = segmentation.shape
    history = _entry(data, 'history', lambda v: [_position(h) for h in (_unwrap(v) or [])])
    state = CanvasState(
        segmentation=segmentation,
        seed=_entry(data, 'seed', _array, 'f', shape),
        seg_prob=_entry(data, 'seg_qprob', _array, 'u', shape),
        origins=_entry(data, 'origins', lambda v: results.decode_origins(v, 'origins')),
        overlaps=_entry(data, 'overlaps', lambda v: _overlaps(_unwrap(v) or {})),
        history=history,
        history_deleted=_entry(data, 'history_deleted',
                               lambda v: [int(x) for x in np.asarray(v, np.int64).ravel()]),
        max_id=_entry(data, 'max_id', _int),
        min_pos=_entry(data, 'min_pos', lambda v: np.asarray(_position(v), dtype=np.int64)),
        max_pos=_entry(data, 'max_pos', lambda v: np.asarray(_position(v), dtype=np.int64)),
        global_to_local_ids=_entry(data, 'global_to_local_ids',
                                   lambda v: _int_dict(_unwrap(v) or {})),
        movement_policy_state=_entry(data, 'movement_policy', _unwrap),
        seed_policy_state=_entry(data, 'seed_policy_state',
                                 lambda v: _seed_policy_state(_unwrap(v), shape)),
        counters=_entry(data, 'counters', _counters),
    )
    partial = _entry(data, 'partial_segment_iters', _int) or 0
  if state.seg_prob is not None and state.seg_prob.dtype != np.uint8:
    raise results.ResultFileError(f"{path} (entry 'seg_qprob') is {state.seg_prob.dtype}, "
                                  'expected uint8')
  return state, partial


def restore(canvas, path: str) -> int:
  """Loads the state saved at `path` into `canvas`; returns its partial_segment_iters."""
  state, partial = load(path, tuple(canvas.segmentation.shape))
  try:
    canvas.load_state(state)
  except ValueError as e:  # A movement policy refusing its saved state.
    raise results.ResultFileError(f"{path} (entry 'movement_policy') is not a state the "
                                  f'movement policy can take: {e}; remove the file to start '
                                  'this subvolume afresh') from None
  return partial
