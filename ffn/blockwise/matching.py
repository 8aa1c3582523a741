"""Matching objects across block overlaps, and one global id per matched group (no I/O).

Two objects, one from each side of an overlap, are the same object when they
share at least `min_overlap_size` voxels there and at least
`min_overlap_fraction` (default one half) of the smaller one's voxels in the
overlap: the rule is the same seen from either side. A thin contact between two
neighbouring objects is a small share of both, so it merges nothing; an object
that one side split in two has each piece mostly inside the other side's copy,
so both pieces join it (mutual best partners alone would leave one piece out).

The same rule also joins two objects when one side merged them, so with
`owner` (which side's owned region each overlap voxel lies in) an object
matched to several objects of the other side keeps its largest partner and
those others whose shared voxels lie mostly in its own side's owned region:
there its segmentation is the one written out, so its merge (or the other
side's split) is what the output shows anyway; in the other side's owned
region the other side's split stands, and the merge is not carried over.

Objects are keyed (block ordinal, local id) packed into one uint64:
ordinal << 32 | local id.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ffn.utils import errors

_ID_BITS = 32
_MAX_LOCAL_ID = (1 << _ID_BITS) - 1


def pack_keys(ordinal: int, local_ids: np.ndarray) -> np.ndarray:
  """The uint64 keys of local ids of one block."""
  local_ids = np.asarray(local_ids, dtype=np.uint64)
  if local_ids.size and int(local_ids.max()) > _MAX_LOCAL_ID:
    raise errors.FFNError(f'block {ordinal} has object id {int(local_ids.max())}; stitching handles '
                     f'ids up to {_MAX_LOCAL_ID}')
  return (np.uint64(ordinal) << np.uint64(_ID_BITS)) | local_ids


def unpack_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(block ordinals, local ids) of packed keys."""
  keys = np.asarray(keys, dtype=np.uint64)
  return (keys >> np.uint64(_ID_BITS)).astype(np.int64), keys & np.uint64(_MAX_LOCAL_ID)


def _sizes_of(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
  """Voxels of each of `ids` (all present in `labels`)."""
  present, counts = np.unique(labels, return_counts=True)
  return counts[np.searchsorted(present, ids)]


def _pair_counts(pairs: np.ndarray, labels_a: np.ndarray, labels_b: np.ndarray,
                 where: np.ndarray) -> np.ndarray:
  """Voxels of `where` in which each (id in a, id in b) pair of `pairs` meets."""
  both = where & (labels_a != 0) & (labels_b != 0)
  found, counts = np.unique(np.stack([labels_a[both].astype(np.uint64),
                                      labels_b[both].astype(np.uint64)]),
                            axis=1, return_counts=True)
  result = np.zeros(pairs.shape[1], dtype=np.int64)
  if found.size:
    index = {(int(x), int(y)): int(n) for x, y, n in zip(found[0], found[1], counts)}
    result[:] = [index.get((int(x), int(y)), 0) for x, y in pairs.T]
  return result


def _owner_consistent(pairs: np.ndarray, counts: np.ndarray, in_a: np.ndarray,
                      in_b: np.ndarray) -> np.ndarray:
  """Which of the kept pairs survive the owner rule (module docstring)."""
  keep = np.ones(pairs.shape[1], dtype=bool)
  for side, own, other in ((0, in_a, in_b), (1, in_b, in_a)):
    ids = pairs[side]
    for object_id in np.unique(ids):
      at = np.flatnonzero(ids == object_id)
      if len(at) < 2:
        continue
      best = at[np.argmax(counts[at])]
      keep[at] &= (at == best) | (own[at] > other[at])
  return keep


def match_overlap(labels_a: np.ndarray, labels_b: np.ndarray, min_overlap_size: int,
                  min_overlap_fraction: float = 0.5,
                  owner: Optional[np.ndarray] = None) -> np.ndarray:
  """The (n, 2) array of (id in a, id in b) pairs of the same object in one overlap.

  `labels_a` and `labels_b` are the two segmentations of the same voxels; 0 is
  background and never matched. `owner` (same shape, optional) is 1 where a's
  block owns the voxel, -1 where b's does, 0 elsewhere; with it, one-to-many
  matches follow the owner rule of the module docstring.
  """
  assert labels_a.shape == labels_b.shape, (labels_a.shape, labels_b.shape)
  both = (labels_a != 0) & (labels_b != 0)
  if not np.any(both):
    return np.zeros((0, 2), dtype=np.uint64)
  pairs, counts = np.unique(
      np.stack([labels_a[both].astype(np.uint64), labels_b[both].astype(np.uint64)]),
      axis=1, return_counts=True)
  smaller = np.minimum(_sizes_of(labels_a.astype(np.uint64, copy=False), pairs[0]),
                       _sizes_of(labels_b.astype(np.uint64, copy=False), pairs[1]))
  keep = (counts >= min_overlap_size) & (counts >= min_overlap_fraction * smaller)
  if owner is not None and np.any(keep):
    assert owner.shape == labels_a.shape, (owner.shape, labels_a.shape)
    kept = pairs[:, keep]
    consistent = _owner_consistent(kept, counts[keep],
                                   _pair_counts(kept, labels_a, labels_b, owner > 0),
                                   _pair_counts(kept, labels_a, labels_b, owner < 0))
    keep[np.flatnonzero(keep)[~consistent]] = False
  return np.ascontiguousarray(pairs[:, keep].T)


def _components(num_nodes: int, edges: np.ndarray) -> np.ndarray:
  """The smallest node index of each node's connected component (min-label propagation)."""
  labels = np.arange(num_nodes)
  first, second = edges[:, 0], edges[:, 1]
  while True:
    lowest = np.minimum(labels[first], labels[second])
    new = labels.copy()
    np.minimum.at(new, first, lowest)
    np.minimum.at(new, second, lowest)
    new = new[new]  # Labels are node indices: jump to the label's label.
    if np.array_equal(new, labels):
      return labels
    labels = new


def global_ids(owned_keys: np.ndarray, matched_pairs: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, int]:
  """Union-find over all matches: (sorted owned keys, their global ids, number of objects).

  `owned_keys` are the objects that own voxels somewhere; `matched_pairs` is
  an (n, 2) array of keys of the same object. Objects that own no voxel still
  link others. Global ids are 1, 2, ... in the order of each group's smallest
  owned key, so they do not depend on the order work was done in.
  """
  owned_keys = np.unique(np.asarray(owned_keys, dtype=np.uint64))
  matched_pairs = np.asarray(matched_pairs, dtype=np.uint64).reshape(-1, 2)
  nodes = np.unique(np.concatenate([owned_keys, matched_pairs.ravel()]))
  if nodes.size == 0:
    return owned_keys, np.zeros(0, dtype=np.uint64), 0
  component = _components(len(nodes), np.searchsorted(nodes, matched_pairs))
  owned_component = component[np.searchsorted(nodes, owned_keys)]
  # Owned keys are sorted, so the first time a component appears is its smallest owned key.
  _, first = np.unique(owned_component, return_index=True)
  rank = np.empty(component.max() + 1, dtype=np.uint64)
  rank[owned_component[np.sort(first)]] = np.arange(1, len(first) + 1, dtype=np.uint64)
  return owned_keys, rank[owned_component], len(first)


def relabel(labels: np.ndarray, ordinal: int, table_keys: np.ndarray,
            table_ids: np.ndarray) -> np.ndarray:
  """Local ids of block `ordinal` replaced by their global ids (0 stays 0), as uint64."""
  local, inverse = np.unique(labels, return_inverse=True)
  mapped = np.zeros(len(local), dtype=np.uint64)
  nonzero = local != 0
  keys = pack_keys(ordinal, local[nonzero])
  at = np.searchsorted(table_keys, keys)
  found = at < len(table_keys)
  found[found] = table_keys[at[found]] == keys[found]
  if not np.all(found):
    missing = unpack_keys(keys[~found])[1][:5].tolist()
    raise errors.FFNError(f'block {ordinal}: object ids {missing} are not in the id table; '
                     'the id table is older than the segmentation')
  mapped[nonzero] = table_ids[at]
  return mapped[inverse].reshape(labels.shape)
