"""Label arithmetic on segmentation arrays: relabelling, dust removal, splitting, growing."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage
import skimage.measure
import skimage.segmentation

from ffn.utils import errors

# Above this many ids, a bincount/lookup table would cost more memory than np.unique.
_MAX_LOOKUP_ID = 10_000_000


def _dense_lookup_ok(data: np.ndarray) -> bool:
  """Whether `data` holds non-negative integers small enough for bincount."""
  if not np.issubdtype(data.dtype, np.integer) or data.size == 0:
    return False
  if np.issubdtype(data.dtype, np.signedinteger) and data.min() < 0:
    return False
  return int(data.max()) < _MAX_LOOKUP_ID


def make_labels_contiguous(labels: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
  """Maps the sorted unique ids of `labels` to 0..N-1; returns (relabeled, [(old, new), ...]).

  As in upstream (R2018), the smallest id becomes 0 whatever it is: when the
  input contains no 0, its smallest object turns into background. Callers that
  need 0 preserved should make sure 0 is present (or handle the pairs). The
  relabeled array is int64, and the pairs are a list (upstream returned a
  one-shot `zip`).
  """
  labels = np.asarray(labels)
  orig_ids, inverse = np.unique(labels, return_inverse=True)
  relabeled = inverse.reshape(labels.shape).astype(np.int64, copy=False)
  pairs = [(int(old), new) for new, old in enumerate(orig_ids.tolist())]
  return relabeled, pairs


def clear_dust(data: np.ndarray, min_size: int = 10) -> np.ndarray:
  """Sets every object with fewer than `min_size` voxels to 0, in place; returns `data`."""
  if data.size == 0 or min_size <= 0:
    return data
  if _dense_lookup_ok(data):
    counts = np.bincount(data.ravel())
    small = np.flatnonzero((counts > 0) & (counts < min_size))
    small = small[small != 0]
    if small.size:
      lookup = np.arange(counts.size, dtype=data.dtype)
      lookup[small] = 0
      data[...] = lookup[data]
    return data
  ids, sizes = np.unique(data, return_counts=True)
  small = ids[(sizes < min_size) & (ids != 0)]
  if small.size:
    data[np.isin(data, small)] = 0
  return data


def reduce_id_bits(segmentation: np.ndarray) -> np.ndarray:
  """Casts `segmentation` to the smallest unsigned dtype that holds its largest id.

  Ids beyond uint32 are returned unchanged (upstream R2018 returned None there).
  """
  max_id = int(segmentation.max()) if segmentation.size else 0
  for dtype in (np.uint8, np.uint16, np.uint32):
    if max_id <= np.iinfo(dtype).max:
      return segmentation.astype(dtype)
  return segmentation


def split_disconnected_components(labels: np.ndarray, connectivity: int = 1) -> np.ndarray:
  """Gives every connected component of every non-zero id its own id (1, 2, ... in raster order).

  `connectivity` is 1, 2 or 3 (6-, 18- or 26-neighbourhood in 3-D). Zeros stay
  zero; the result has the dtype of `labels`.
  """
  labels = np.asarray(labels)
  if connectivity not in range(1, labels.ndim + 1):
    raise ValueError(f'connectivity must be in 1..{labels.ndim}, got {connectivity!r}')
  if labels.size == 0:
    return labels.copy()
  components = skimage.measure.label(labels, connectivity=connectivity, background=0)
  if np.any((components == 0) != (labels == 0)):
    # Defensive: keep the input's zeros as the only zeros, as upstream does.
    components = components + 1
    components[labels == 0] = 0
  return components.astype(labels.dtype, copy=False)


def clean_up_and_count(seg: np.ndarray, split_cc: bool = True, connectivity: int = 1,
                       min_size: int = 0, compute_id_map: bool = True,
                       compute_counts: bool = True
                       ) -> tuple[Optional[dict], Optional[dict]]:
  """Splits components and removes dust in place; returns ({new: orig id}, {new: count}).

  Either dict is None when not requested.
  """
  original = seg.copy() if compute_id_map else None
  if split_cc:
    seg[...] = split_disconnected_components(seg, connectivity)
  if min_size > 0:
    clear_dust(seg, min_size)
  id_map = counts = None
  if compute_id_map or compute_counts:
    flat = seg.ravel()
    if compute_id_map:
      ids, first, sizes = np.unique(flat, return_index=True, return_counts=True)
      id_map = dict(zip(ids.tolist(), original.ravel()[first].tolist()))
    else:
      ids, sizes = np.unique(flat, return_counts=True)
    if compute_counts:
      counts = dict(zip(ids.tolist(), sizes.tolist()))
  return id_map, counts


def clean_up(seg: np.ndarray, split_cc: bool = True, min_size: int = 0,
             return_id_map: bool = False, connectivity: int = 1) -> Optional[dict]:
  """Splits components and removes objects below `min_size`, in place.

  With `return_id_map`, returns {new id: original id} (each new id's original
  is the id of its first voxel in raster order); otherwise None.
  """
  id_map, _ = clean_up_and_count(seg, split_cc=split_cc, connectivity=connectivity,
                                 min_size=min_size, compute_id_map=return_id_map,
                                 compute_counts=False)
  return id_map if return_id_map else None


def _remap_to_uint32(x: np.ndarray) -> tuple[np.ndarray, int, Optional[np.ndarray]]:
  """Returns (ids below 2**32, max id, table mapping them back or None when unchanged)."""
  if x.dtype != np.uint64:
    raise TypeError(f'expected a uint64 segmentation, got {x.dtype}')
  max_id = int(x.max()) if x.size else 0
  if max_id <= 0xFFFFFFFF:
    return x, max_id, None
  originals, inverse = np.unique(x, return_inverse=True)
  if originals.size > 0xFFFFFFFF:
    raise errors.FFNError('more than 2**32-1 distinct ids are not supported')
  inverse = inverse.astype(np.uint64).ravel()
  if originals[0] != 0:
    # Keep 0 meaning background after remapping.
    originals = np.concatenate([np.zeros(1, np.uint64), originals])
    inverse += np.uint64(1)
  return inverse, max_id, originals


def split_segmentation_by_intersection(a: np.ndarray, b: np.ndarray, min_size: int) -> None:
  """Gives every overlapping (a id, b id) pair its own id, writing the result into `a`.

  A pair keeps its `a` id when its `b` id is the largest overlap of that `a` id
  (ties go to the smaller `b` id); other pairs get new ids above max(a), in
  order of (b id, a id). Pairs smaller than `min_size`, or with a id 0, become 0.
  Both inputs must be uint64 arrays of the same shape; `b` is not modified.
  """
  if a.shape != b.shape:
    raise errors.FFNError(f'segmentations differ in shape: {a.shape} versus {b.shape}')
  flat_a = a.reshape(-1)
  ra, max_id, a_back = _remap_to_uint32(flat_a)
  rb, _, _ = _remap_to_uint32(b.reshape(-1))
  joint = np.bitwise_or(ra.astype(np.uint64), rb.astype(np.uint64) << np.uint64(32))
  pairs, inverse, counts = np.unique(joint, return_inverse=True, return_counts=True)
  pair_a = pairs & np.uint64(0xFFFFFFFF)
  pair_b = pairs >> np.uint64(32)

  # The best partner of every a id: most voxels, then the smallest b id.
  order = np.lexsort((pair_b, -counts.astype(np.int64), pair_a))
  first_of_a = np.ones(order.size, dtype=bool)
  first_of_a[1:] = pair_a[order][1:] != pair_a[order][:-1]
  best_rows = order[first_of_a]
  a_ids_with_best = pair_a[best_rows]
  best_b = pair_b[best_rows]
  is_best = pair_b == best_b[np.searchsorted(a_ids_with_best, pair_a)]

  dropped = (counts < min_size) | (pair_a == 0)
  keeps_a = ~dropped & is_best
  gets_new = ~dropped & ~is_best
  new_labels = np.zeros(pairs.size, dtype=np.uint64)
  kept_ids = pair_a[keeps_a]
  new_labels[keeps_a] = a_back[kept_ids.astype(np.int64)] if a_back is not None else kept_ids
  new_labels[gets_new] = np.uint64(max_id) + np.arange(
      1, int(gets_new.sum()) + 1, dtype=np.uint64)
  flat_a[...] = new_labels[inverse.ravel()]
  if not np.shares_memory(flat_a, a):
    a[...] = flat_a.reshape(a.shape)


def watershed_expand(seg: np.ndarray, voxel_size: Sequence[float],
                     max_distance: Optional[float] = None,
                     mask: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
  """Grows all segments at one rate into the empty space (to `max_distance`, within `mask`).

  `seg` is zyx; `voxel_size` and `max_distance` are xyz / physical units.
  Returns the expanded segmentation and the distance of every voxel to the
  nearest original segment voxel (0 on segments).
  """
  ids, low = np.unique(seg, return_inverse=True)
  low = low.reshape(seg.shape)
  if ids[0] != 0:  # No background: ids map to 1.. so that 0 stays "empty".
    ids, low = np.concatenate([[0], ids]), low + 1
  empty = low == 0
  if not np.any(~empty):
    return seg.copy(), np.full(seg.shape, np.inf)
  distance = ndimage.distance_transform_edt(empty, sampling=tuple(voxel_size)[::-1])
  grow = np.ones(seg.shape, bool) if mask is None else np.array(mask, bool)
  if max_distance is not None:
    grow &= distance <= max_distance
  expanded = skimage.segmentation.watershed(distance, low, mask=grow)
  # Segment voxels outside the region keep their ids.
  expanded[~grow] = low[~grow]
  return ids[expanded].astype(seg.dtype, copy=False), distance
