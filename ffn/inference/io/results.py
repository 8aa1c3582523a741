"""Segmentation results on disk: subvolume paths, npz I/O and loading with clean-up.

Corners passed here are zyx; file names carry the corner as x_y_z, as
upstream's do:

  <dir>/<x>/<y>/seg-<x>_<y>_<z>.npz     the segmentation (keys `segmentation`, `origins`, ...)
  <dir>/<x>/<y>/seg-<x>_<y>_<z>.prob    the quantised object probability (key `qprob`)
  <dir>/<x>/<y>/seg-<x>_<y>_<z>.cpoint  a checkpoint of an unfinished subvolume
  <dir>/seg-<x>_<y>_<z>.<suffix>        the legacy flat layout, still read

Every file is written through ffn.utils.atomic, so a reader sees either the
complete file or none.
"""

from __future__ import annotations

import collections
import glob
import logging
import os
import re
from typing import Any, Mapping, Optional

import numpy as np

from ffn.inference import inference_pb2
from ffn.inference.io.masks import build_mask
from ffn.inference.io.probmaps import load_probability_map
from ffn.utils import atomic
from ffn.utils import checks
from ffn.utils import errors
from ffn.utils import labels as segmentation
from ffn.utils import safe_pickle
from ffn.utils import state_codec
from ffn.utils.axes import ZYX

# Pickled into every npz and checkpoint under upstream's name, so that files
# written here and by upstream load in both.
OriginInfo = collections.namedtuple('OriginInfo', ['start_zyx', 'iters', 'walltime_sec'],
                                    module='ffn.inference.storage')


def _xyz_name(corner: ZYX, suffix: str) -> str:
  z, y, x = (int(c) for c in corner)
  return f'seg-{x}_{y}_{z}.{suffix}'


def subvolume_path(output_dir: str, corner: ZYX, suffix: str) -> str:
  """`<output_dir>/<x>/<y>/seg-<x>_<y>_<z>.<suffix>` for a zyx corner."""
  _, y, x = (int(c) for c in corner)
  return os.path.join(output_dir, str(x), str(y), _xyz_name(corner, suffix))


def legacy_subvolume_path(output_dir: str, corner: ZYX, suffix: str) -> str:
  """The flat `<output_dir>/seg-<x>_<y>_<z>.<suffix>` for a zyx corner."""
  return os.path.join(output_dir, _xyz_name(corner, suffix))


def segmentation_path(output_dir: str, corner: ZYX) -> str:
  """The `.npz` segmentation path of a subvolume."""
  return subvolume_path(output_dir, corner, 'npz')


def object_prob_path(output_dir: str, corner: ZYX) -> str:
  """The `.prob` probability-map path of a subvolume."""
  return subvolume_path(output_dir, corner, 'prob')


def checkpoint_path(output_dir: str, corner: ZYX) -> str:
  """The `.cpoint` checkpoint path of a subvolume."""
  return subvolume_path(output_dir, corner, 'cpoint')


def legacy_segmentation_path(output_dir: str, corner: ZYX) -> str:
  """The legacy flat `.npz` segmentation path of a subvolume."""
  return legacy_subvolume_path(output_dir, corner, 'npz')


def legacy_object_prob_path(output_dir: str, corner: ZYX) -> str:
  """The legacy flat `.prob` path of a subvolume."""
  return legacy_subvolume_path(output_dir, corner, 'prob')


_CORNER_RE = re.compile(r'(\d+)_(\d+)_(\d+)\.[A-Za-z0-9]+$')


def get_corner_from_path(path: str) -> tuple[int, int, int]:
  """The zyx corner encoded (as x_y_z) in a subvolume file name."""
  match = _CORNER_RE.search(os.path.basename(path))
  if match is None:
    raise errors.FFNError(f'{path!r} is not a subvolume file name (expected seg-<x>_<y>_<z>.<suffix>)')
  x, y, z = (int(v) for v in match.groups())
  return z, y, x


def get_existing_corners(segmentation_dir: str) -> list[tuple[int, int, int]]:
  """The sorted zyx corners of the `.npz` segmentations in a directory, in either layout."""
  patterns = (os.path.join(segmentation_dir, 'seg-*_*_*.npz'),
              os.path.join(segmentation_dir, '*', '*', 'seg-*_*_*.npz'))
  corners = set()
  for pattern in patterns:
    for path in glob.glob(pattern):
      corners.add(get_corner_from_path(path))
  return sorted(corners)


def get_existing_subvolume_path(segmentation_dir: str, corner: ZYX,
                                allow_cpoint: bool = False) -> Optional[str]:
  """The path of a finished (or, if allowed, checkpointed) subvolume, or None."""
  for path in _subvolume_candidates(segmentation_dir, corner, allow_cpoint):
    if os.path.exists(path):
      return path
  return None


def _subvolume_candidates(segmentation_dir: str, corner: ZYX, allow_cpoint: bool) -> list[str]:
  """Where a subvolume's segmentation may be, in the order they are tried."""
  candidates = [segmentation_path(segmentation_dir, corner),
                legacy_segmentation_path(segmentation_dir, corner)]
  if allow_cpoint:
    candidates.append(checkpoint_path(segmentation_dir, corner))
  return candidates


class ResultFileError(errors.FFNError):
  """A result, probability map or checkpoint file whose contents are not what it must hold."""


# Origins and overlaps are stored as plain numeric tables, so our files hold no
# pickles; upstream's files (pickled dicts) are read through safe_pickle.
ORIGINS_DTYPE = np.dtype([('id', '<u8'), ('start_zyx', '<i8', (3,)), ('iters', '<i8'),
                          ('walltime_sec', '<f8')])
# One row per (segment, earlier segment it overlapped when it was grown): how
# many of its voxels above segment_threshold lay on that earlier segment.
OVERLAPS_DTYPE = np.dtype([('id', '<u8'), ('overlapped_id', '<u8'), ('voxels', '<i8')])
_ADMITTED_PICKLE_GLOBALS = {('ffn.inference.storage', 'OriginInfo'): OriginInfo}
# Namedtuples kept by name in the tagged-JSON state of checkpoints.
STATE_NAMED = {'OriginInfo': OriginInfo}


def encode_origins(origins: Mapping[int, Any]) -> np.ndarray:
  """An id -> OriginInfo dict as a structured ORIGINS_DTYPE array (no pickles)."""
  table = np.zeros(len(origins), dtype=ORIGINS_DTYPE)
  for row, (sid, info) in enumerate(sorted(origins.items())):
    table[row] = (int(sid), tuple(int(v) for v in info[0]), int(info[1]), float(info[2]))
  return table


def _origin_info(value: Any) -> OriginInfo:
  """An OriginInfo of a stored (start_zyx, iters, walltime_sec) value; ValueError if not one."""
  start, iters, walltime = value
  start = tuple(int(v) for v in start)
  if len(start) != 3:
    raise ValueError(f'start_zyx {start} is not 3 coordinates')
  return OriginInfo(start, int(iters), float(walltime))


def decode_origins(stored: np.ndarray, source: str = 'origins entry') -> dict:
  """The id -> OriginInfo dict of a stored `origins` entry.

  Reads upstream's pickled dicts, this port's ORIGINS_DTYPE tables and the
  tagged JSON of this port's `.cpoint` files; ResultFileError naming `source`
  for anything else.
  """
  try:
    if stored.dtype.kind == 'U' and stored.shape == ():
      value = state_codec.loads(str(stored), STATE_NAMED)
    elif stored.dtype == object:
      value = stored.item() if stored.shape == () else dict(stored)
    elif stored.dtype.names == ORIGINS_DTYPE.names:
      return {int(r['id']): _origin_info((r['start_zyx'], r['iters'], r['walltime_sec']))
              for r in stored.reshape(-1)}
    else:
      raise ValueError(f'dtype {stored.dtype}, expected {ORIGINS_DTYPE}')
    if value is None:
      return {}
    if not isinstance(value, Mapping):
      raise ValueError(f'a {type(value).__name__}, expected a dict of id -> OriginInfo')
    return {int(k): _origin_info(v) for k, v in value.items()}
  except (ValueError, TypeError, OverflowError) as e:
    raise ResultFileError(f'{source} is not a table of segment origins: {e}') from None


def encode_overlaps(overlaps: Mapping[int, Any]) -> np.ndarray:
  """An id -> (2, K) [overlapped ids, voxel counts] dict as an OVERLAPS_DTYPE table."""
  rows = []
  for sid, value in sorted(overlaps.items()):
    ids, counts = np.asarray(value, dtype=np.int64).reshape(2, -1)
    rows.extend((int(sid), int(i), int(c)) for i, c in zip(ids, counts))
  return np.array(rows, dtype=OVERLAPS_DTYPE)


def decode_overlaps(stored: np.ndarray, source: str = 'overlaps entry') -> dict:
  """The id -> (2, K) [overlapped ids, voxel counts] dict of an OVERLAPS_DTYPE table."""
  if stored.dtype.names != OVERLAPS_DTYPE.names:
    raise ResultFileError(f'{source} has dtype {stored.dtype}, expected {OVERLAPS_DTYPE}')
  overlaps: dict = {}
  for row in stored.reshape(-1):
    overlaps.setdefault(int(row['id']), []).append((int(row['overlapped_id']),
                                                    int(row['voxels'])))
  return {sid: np.array(pairs, dtype=np.int64).T for sid, pairs in overlaps.items()}


def check_segmentation_array(array: np.ndarray, source: str,
                             shape: Optional[ZYX] = None) -> np.ndarray:
  """`array` if it is a 3-D integer label array (of `shape`, when given); else ResultFileError."""
  if array.dtype.kind not in 'iu' or array.ndim != 3:
    raise ResultFileError(f'{source} is a {array.ndim}-D {array.dtype} array; a segmentation '
                          'is a 3-D array of integer ids')
  if shape is not None and tuple(array.shape) != tuple(int(n) for n in shape):
    raise ResultFileError(f'{source} has shape {tuple(array.shape)[::-1]} (xyz), expected '
                          f'{tuple(int(n) for n in shape)[::-1]}')
  return array


def open_npz(path: str, max_bytes: Optional[int] = None) -> safe_pickle.SafeNpzFile:
  """Opens an FFN npz (ours or upstream's) without running code from its pickles.

  `max_bytes` bounds each inflated entry (default: half of the memory).
  """
  return safe_pickle.load_npz(path, _ADMITTED_PICKLE_GLOBALS, max_bytes)


def save_subvolume(labels: np.ndarray, origins: Mapping[int, Any], output_path: str,
                   **misc_items) -> None:
  """Writes a segmentation npz: `segmentation` (smallest uint dtype), `origins`, and `misc_items`.

  `origins` is written as an ORIGINS_DTYPE table and a dict `overlaps` as an
  (N, 2) table; other items must be arrays, numbers or strings, never objects.
  """
  seg = segmentation.reduce_id_bits(np.asarray(labels))
  if isinstance(misc_items.get('overlaps'), Mapping):
    misc_items['overlaps'] = encode_overlaps(misc_items['overlaps'])
  with atomic.atomic_open(output_path, 'wb') as f:
    np.savez_compressed(f, segmentation=seg, origins=encode_origins(origins), **misc_items)


def load_origins(segmentation_dir: str, corner: ZYX) -> dict:
  """The id -> OriginInfo dict saved with a finished subvolume."""
  path = get_existing_subvolume_path(segmentation_dir, corner, allow_cpoint=False)
  if path is None:
    raise errors.FFNError(f'no segmentation for corner {tuple(corner)} (zyx) in {segmentation_dir}: '
                     f'{segmentation_path(segmentation_dir, corner)} does not exist')
  with open_npz(path) as data:
    if 'origins' not in data:
      raise errors.FFNError(f'{path} has no {"origins"!r} entry (has {data.files})')
    return decode_origins(data['origins'], f'{path} (entry \'origins\')')


def threshold_segmentation(segmentation_dir: str, corner: ZYX, labels: np.ndarray,
                           threshold: float) -> None:
  """Zeroes, in place, the voxels of `labels` whose saved object probability is below `threshold`."""
  path = object_prob_path(segmentation_dir, corner)
  if not os.path.exists(path):
    legacy = legacy_object_prob_path(segmentation_dir, corner)
    if not os.path.exists(legacy):
      raise errors.FFNError(f'cannot threshold: no probability map {path} (nor {legacy})')
    path = legacy
  prob = load_probability_map(path)
  if prob.shape != labels.shape:
    raise ResultFileError(f'probability map {path} has shape {prob.shape[::-1]} (xyz), '
                          f'the segmentation {labels.shape[::-1]}')
  labels[prob < threshold] = 0


def load_segmentation(segmentation_dir: str, corner: ZYX, allow_cpoint: bool = False,
                      threshold: Optional[float] = None, split_cc: bool = True,
                      min_size: int = 0,
                      mask_config: Optional[inference_pb2.MaskConfigs] = None
                      ) -> tuple[np.ndarray, dict]:
  """Loads a subvolume's segmentation as (uint64 zyx labels, id -> OriginInfo), cleaned as asked.

  `threshold` re-thresholds with the saved `.prob` map (it can only remove
  voxels), `mask_config` zeroes masked voxels, and `split_cc`/`min_size`
  relabel connected components and drop small ones; origins follow the new ids.
  """
  if threshold is not None:
    checks.check_number(threshold, 'threshold', checks.UNIT)
  checks.check_number(min_size, 'min_size', checks.NON_NEGATIVE_INT)
  path = get_existing_subvolume_path(segmentation_dir, corner, allow_cpoint)
  if path is None:
    tried = _subvolume_candidates(segmentation_dir, corner, allow_cpoint)
    raise errors.FFNError(f'no segmentation for corner {tuple(int(c) for c in corner)} (zyx) in '
                     f'{segmentation_dir!r}; looked for {", ".join(tried)}')

  logging.info('loading segmentation from %s', path)
  with open_npz(path) as data:
    if 'segmentation' not in data:
      raise errors.FFNError(f'{path} is not an FFN segmentation (no segmentation key; has {data.files})')
    seg = check_segmentation_array(data['segmentation'], f"{path} (entry 'segmentation')")
    origins = (decode_origins(data['origins'], f"{path} (entry 'origins')")
               if 'origins' in data else {})

  if np.issubdtype(seg.dtype, np.signedinteger):
    # Checkpoints mark failed seeds with negative ids; they are not objects.
    seg = np.where(seg < 0, 0, seg)
  if not np.any(seg):
    return np.zeros(seg.shape, dtype=np.uint64), {}

  labels = seg.astype(np.uint64)
  if threshold is not None:
    logging.info('thresholding at %f', threshold)
    threshold_segmentation(segmentation_dir, corner, labels, threshold)
  if mask_config is not None:
    mask = build_mask(mask_config.masks, corner, labels.shape)
    if mask is not None:
      labels[mask] = 0
  if split_cc or min_size:
    logging.info('cleaning up with split_cc=%r, min_size=%d', split_cc, min_size)
    # Each new id keeps the origin of the old id under its first voxel.
    new_to_old = segmentation.clean_up(labels, split_cc=split_cc, min_size=min_size,
                                       return_id_map=True)
    origins = {int(new): origins[int(old)] for new, old in new_to_old.items()
               if new != 0 and int(old) in origins}
  return labels, origins


def load_segmentation_from_source(source: inference_pb2.SegmentationSource,
                                  corner: ZYX) -> tuple[np.ndarray, dict]:
  """`load_segmentation` with the options set in a SegmentationSource proto."""
  kwargs = {}
  if source.HasField('threshold'):
    kwargs['threshold'] = source.threshold
  if source.HasField('split_cc'):
    kwargs['split_cc'] = source.split_cc
  if source.HasField('min_size'):
    kwargs['min_size'] = source.min_size
  if source.HasField('mask'):
    kwargs['mask_config'] = source.mask
  return load_segmentation(source.directory, corner, **kwargs)
