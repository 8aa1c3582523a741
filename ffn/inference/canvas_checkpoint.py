"""Saving and restoring a Canvas's inference state (`.cpoint` npz files).

A checkpoint holds everything needed to continue a run and get exactly the
result of an uninterrupted one, including an object in flight: the seed, the
movement queue, the visited extents, the number of FOVs already run for it and
a seed-policy position pointing back at its seed. The keys of 2019's
checkpoints are a subset, so those load too (without the object in flight).
"""

from __future__ import annotations

import numpy as np

from ffn.inference import storage
from ffn.utils import atomic
from ffn.utils import state_codec

# Namedtuples kept by name in the stored state.
_NAMED = {'OriginInfo': storage.OriginInfo}


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
  seed_policy_state = None
  if canvas.seed_policy is not None:
    seed_policy_state = canvas.seed_policy.get_state(
        previous=bool(partial_segment_iters > 0 or seed_pending))
  arrays = dict(
      movement_policy=_as_object(canvas.movement_policy.get_state()),
      segmentation=canvas.segmentation,
      seed=canvas.seed,
      origins=_as_object(canvas.origins),
      overlaps=_as_object(canvas.overlaps),
      min_pos=np.asarray(canvas._min_pos),  # pylint: disable=protected-access
      max_pos=np.asarray(canvas._max_pos),  # pylint: disable=protected-access
      max_id=np.int64(canvas._max_id),  # pylint: disable=protected-access
      history=_as_object(list(canvas.history)),
      history_deleted=np.asarray(canvas.history_deleted, dtype=np.int64),
      seed_policy_state=_as_object(seed_policy_state),
      counters=np.asarray(canvas.counters.dumps()),
      partial_segment_iters=np.int64(partial_segment_iters),
      global_to_local_ids=_as_object(canvas.global_to_local_ids),
  )
  if canvas.keep_probability_maps:
    arrays['seg_qprob'] = canvas.seg_prob
  with atomic.atomic_open(path, 'wb') as f:
    np.savez_compressed(f, **arrays)


def restore(canvas, path: str) -> int:
  """Loads the state saved at `path` into `canvas`; returns its partial_segment_iters."""
  with storage.open_npz(path) as data:
    for key in ('segmentation', 'seed', 'history', 'history_deleted', 'movement_policy',
                'seed_policy_state', 'counters', 'origins'):
      if key not in data:
        raise ValueError(f'{path} is not an inference checkpoint (no {key!r} entry); '
                         'remove it to start this subvolume afresh')
    saved_shape = tuple(data['segmentation'].shape)
    if saved_shape != tuple(canvas.segmentation.shape):
      raise ValueError(f'{path} is a checkpoint of a box of shape {saved_shape[::-1]} (xyz), '
                       f'but this box is {tuple(canvas.segmentation.shape)[::-1]}; remove it '
                       'to start this subvolume afresh')
    canvas.segmentation[:] = data['segmentation']
    canvas.seed[:] = data['seed']
    if canvas.keep_probability_maps and 'seg_qprob' in data:
      canvas.seg_prob[:] = data['seg_qprob']
    canvas.origins = dict(_unwrap(data['origins']))
    if 'overlaps' in data:
      canvas.overlaps = dict(_unwrap(data['overlaps']))
    history = _unwrap(data['history'])
    canvas.history = [tuple(h) for h in history] if history is not None else []
    canvas.history_deleted = [int(v) for v in np.asarray(data['history_deleted']).ravel()]
    if 'max_id' in data:
      canvas._max_id = int(data['max_id'])  # pylint: disable=protected-access
    else:
      canvas._max_id = int(canvas.segmentation.max(initial=0))  # pylint: disable=protected-access
    if 'min_pos' in data:
      canvas._min_pos = np.asarray(data['min_pos'], dtype=np.int64)  # pylint: disable=protected-access
      canvas._max_pos = np.asarray(data['max_pos'], dtype=np.int64)  # pylint: disable=protected-access
    if 'global_to_local_ids' in data:
      canvas.global_to_local_ids = dict(_unwrap(data['global_to_local_ids']))
    canvas.movement_policy.restore_state(_unwrap(data['movement_policy']))
    state = _unwrap(data['seed_policy_state'])
    canvas._seed_policy_state = state  # pylint: disable=protected-access
    canvas.counters.loads(str(data['counters']))
    canvas.counters['voxels-segmented'].Set(int(np.sum(canvas.segmentation > 0)))
    partial = int(data['partial_segment_iters']) if 'partial_segment_iters' in data else 0
  return partial
