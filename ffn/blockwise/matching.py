"""Matching objects across block overlaps, and one global id per matched group (no I/O).

Two objects, one from each side of an overlap, are the same object when each
is the other's largest partner there (agreement both ways) and they share at
least `min_overlap_size` voxels and at least `min_overlap_fraction` of the
smaller one's voxels in the overlap. A thin contact between two neighbouring
objects is never either one's largest partner, so it merges nothing; and where
one side left an object unsegmented, the few voxels its neighbour shares with
the other side's copy fall short of the fraction.

Objects are keyed (block ordinal, local id) packed into one uint64:
ordinal << 32 | local id.
"""

from __future__ import annotations

import numpy as np

_ID_BITS = 32
_MAX_LOCAL_ID = (1 << _ID_BITS) - 1


def pack_keys(ordinal: int, local_ids: np.ndarray) -> np.ndarray:
  """The uint64 keys of local ids of one block."""
  local_ids = np.asarray(local_ids, dtype=np.uint64)
  if local_ids.size and int(local_ids.max()) > _MAX_LOCAL_ID:
    raise ValueError(f'block {ordinal} has object id {int(local_ids.max())}; stitching handles '
                     f'ids up to {_MAX_LOCAL_ID}')
  return (np.uint64(ordinal) << np.uint64(_ID_BITS)) | local_ids


def unpack_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(block ordinals, local ids) of packed keys."""
  keys = np.asarray(keys, dtype=np.uint64)
  return (keys >> np.uint64(_ID_BITS)).astype(np.int64), keys & np.uint64(_MAX_LOCAL_ID)


def _best_partner(first: np.ndarray, second: np.ndarray, counts: np.ndarray) -> dict:
  """first id -> (second id, count) of its largest partner (ties: the smaller id)."""
  # Sorted by first id, then count descending, then second id ascending.
  order = np.lexsort((second, -counts, first))
  first, second, counts = first[order], second[order], counts[order]
  heads = np.ones(len(first), dtype=bool)
  heads[1:] = first[1:] != first[:-1]
  return {int(f): (int(s), int(c)) for f, s, c in zip(first[heads], second[heads], counts[heads])}


def _sizes(labels: np.ndarray) -> dict:
  """id -> voxels of each nonzero id."""
  ids, counts = np.unique(labels[labels != 0], return_counts=True)
  return dict(zip(ids.tolist(), counts.tolist()))


def match_overlap(labels_a: np.ndarray, labels_b: np.ndarray, min_overlap_size: int,
                  min_overlap_fraction: float = 0.0) -> np.ndarray:
  """The (n, 2) array of (id in a, id in b) pairs that agree both ways in one overlap.

  `labels_a` and `labels_b` are the two segmentations of the same voxels; 0 is
  background and never matched.
  """
  assert labels_a.shape == labels_b.shape, (labels_a.shape, labels_b.shape)
  both = (labels_a != 0) & (labels_b != 0)
  if not np.any(both):
    return np.zeros((0, 2), dtype=np.uint64)
  pairs, counts = np.unique(
      np.stack([labels_a[both].astype(np.uint64), labels_b[both].astype(np.uint64)]),
      axis=1, return_counts=True)
  a_ids, b_ids = pairs
  best_of_a = _best_partner(a_ids, b_ids, counts)
  best_of_b = _best_partner(b_ids, a_ids, counts)
  size_a, size_b = _sizes(labels_a), _sizes(labels_b)
  matched = [(a, b) for a, (b, count) in best_of_a.items()
             if count >= min_overlap_size and best_of_b[b][0] == a
             and count >= min_overlap_fraction * min(size_a[a], size_b[b])]
  return np.array(sorted(matched), dtype=np.uint64).reshape(-1, 2)


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
    raise ValueError(f'block {ordinal}: object ids {missing} are not in the id table; '
                     'the id table is older than the segmentation')
  mapped[nonzero] = table_ids[at]
  return mapped[inverse].reshape(labels.shape)
