"""Saving and restoring a subvolume's progress (`.cpoint` npz files).

A checkpoint holds everything needed to continue a run and get exactly the
result of an uninterrupted one: the `SubvolumeState` (every field, under the
keys of `STATE_KEYS`), the object in flight (its object map under `seed`, the
movement queue, the visited extents, the FOVs already run for it), the seed
policy's position, the counters, and the settings the run was made with
(`request`, the serialised InferenceRequest), so that a resume under other
settings can be refused. The keys of 2019's checkpoints are a subset, so those
load too (without the object in flight).

A checkpoint file is data from disk: `load` checks every entry (dtype, shape,
structure) and any failure is a ResultFileError naming the file.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

import numpy as np

from ffn.inference.growing import state as state_lib
from ffn.inference.growing.grower import GrowthProgress
from ffn.inference.growing.state import SubvolumeState
from ffn.inference.io import results
from ffn.utils import atomic
from ffn.utils import errors
from ffn.utils import state_codec

_REQUIRED_KEYS = ('segmentation', 'seed', 'history', 'history_deleted', 'movement_policy',
                  'seed_policy_state', 'counters', 'origins')
# Bytes a checkpoint may hold beyond its arrays (queues, origins, counters as JSON).
_STATE_BYTES = 256 << 20


@dataclasses.dataclass
class Checkpoint:
  """What a checkpoint file holds; None marks what a 2019 checkpoint lacks."""
  state: SubvolumeState  # Fields a 2019 checkpoint lacks are None.
  object_map: np.ndarray
  progress: GrowthProgress  # num_iters > 0: an object in flight.
  seed_policy_state: Any
  counters: str


# SubvolumeState field -> its key in the file (2019's names where it has them).
STATE_KEYS = {'segmentation': 'segmentation', 'seg_prob': 'seg_qprob', 'origins': 'origins',
              'overlaps': 'overlaps', 'global_to_local_ids': 'global_to_local_ids',
              'max_id': 'max_id'}
assert set(STATE_KEYS) == set(state_lib.FIELDS), 'every state field has its key'


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


def save(path: str, state: SubvolumeState, object_map: np.ndarray, progress: GrowthProgress,
         seed_policy_state: Any, counters: str, request: bytes = b'') -> None:
  """Writes a checkpoint to `path` atomically (`progress.num_iters` > 0: an object in flight)."""
  encoded = {
      'segmentation': state.segmentation,
      'seg_prob': state.seg_prob,
      'origins': _as_object(state.origins),
      'overlaps': _as_object(state.overlaps),
      'global_to_local_ids': _as_object(state.global_to_local_ids),
      'max_id': np.int64(state.max_id),
  }
  arrays = {STATE_KEYS[name]: value for name, value in encoded.items() if value is not None}
  arrays.update(
      seed=object_map,
      movement_policy=_as_object(progress.movement_policy_state),
      history=_as_object(list(progress.history)),
      history_deleted=np.asarray(progress.history_deleted, dtype=np.int64),
      min_pos=np.asarray(progress.min_pos),
      max_pos=np.asarray(progress.max_pos),
      partial_segment_iters=np.int64(progress.num_iters),
      seed_policy_state=_as_object(seed_policy_state),
      counters=np.asarray(counters),
  )
  if request:
    arrays['request'] = np.bytes_(request)
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


def load(path: str, shape_zyx=None) -> Checkpoint:
  """The checkpoint saved at `path`, every entry checked.

  `shape_zyx` is the box it must be of (default: that of its segmentation).
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
    state = SubvolumeState(
        segmentation=segmentation,
        seg_prob=_entry(data, STATE_KEYS['seg_prob'], _array, 'u', shape),
        origins=_entry(data, 'origins', lambda v: results.decode_origins(v, 'origins')),
        overlaps=_entry(data, 'overlaps', lambda v: _overlaps(_unwrap(v) or {})),
        global_to_local_ids=_entry(data, 'global_to_local_ids',
                                   lambda v: _int_dict(_unwrap(v) or {})),
        max_id=_entry(data, 'max_id', _int))
    min_pos = _entry(data, 'min_pos', lambda v: tuple(_position(v)))
    progress = GrowthProgress(
        num_iters=_entry(data, 'partial_segment_iters', _int) or 0,
        movement_policy_state=_entry(data, 'movement_policy', _unwrap),
        history=_entry(data, 'history', lambda v: [_position(h) for h in (_unwrap(v) or [])]),
        history_deleted=_entry(data, 'history_deleted',
                               lambda v: [int(x) for x in np.asarray(v, np.int64).ravel()]),
        min_pos=min_pos,
        max_pos=_entry(data, 'max_pos', lambda v: tuple(_position(v))) if min_pos else None)
    checkpoint = Checkpoint(
        state=state,
        object_map=_entry(data, 'seed', _array, 'f', shape),
        progress=progress,
        seed_policy_state=_entry(data, 'seed_policy_state',
                                 lambda v: _seed_policy_state(_unwrap(v), shape)),
        counters=_entry(data, 'counters', _counters))
  if state.seg_prob is not None and state.seg_prob.dtype != np.uint8:
    raise results.ResultFileError(f"{path} (entry 'seg_qprob') is {state.seg_prob.dtype}, "
                                  'expected uint8')
  return checkpoint
