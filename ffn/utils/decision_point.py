"""Decision points: where two segments, grown into the space between them, meet.

A decision point of a segment pair is a place to ask "should these two be
merged?" (e.g. for resegmentation): the touching voxel pair of the watershed-
expanded segmentation that lies closest to the original segments.
"""

from __future__ import annotations

import itertools
from typing import Optional, Sequence

import numpy as np

from ffn.utils import bounding_box
from ffn.utils import labels

# The 7 neighbours of a voxel in the (-1, 0) half of its 2x2x2 cube: every
# adjacent pair of a 3x3x3 neighbourhood is seen once from one of its voxels.
_OFFSETS = [o for o in itertools.product((0, -1), repeat=3) if o != (0, 0, 0)]


def _touching_pairs(expanded: np.ndarray, distance: np.ndarray):
  """(a, b, mean distance, zyx of the first voxel) of every touching voxel pair, a < b."""
  parts = []
  for offset in _OFFSETS:
    first = tuple(slice(0, -1) if o else slice(None) for o in offset)
    second = tuple(slice(1, None) if o else slice(None) for o in offset)
    a, b = expanded[first], expanded[second]
    touching = (a > 0) & (b > 0) & (a != b)
    if not np.any(touching):
      continue
    pair = np.sort(np.stack([a[touching], b[touching]]).astype(np.uint64), axis=0)
    mean = (distance[first][touching] + distance[second][touching]) / 2
    parts.append((pair[0], pair[1], mean, np.argwhere(touching)))
  if not parts:
    return None
  return tuple(np.concatenate(p) for p in zip(*parts))


def find_decision_points(
    seg: np.ndarray, voxel_size: Sequence[float], max_distance: Optional[float] = None,
    subvol_box: Optional[bounding_box.BoundingBox] = None, optimize_sparse: bool = False,
    sparse_noise_threshold: int = 0) -> dict[tuple[int, int], tuple[float, np.ndarray]]:
  """{(a, b): (distance, xyz point)} for every pair of segments of the zyx `seg` that meet.

  Segments are grown (watershed_expand, `voxel_size` xyz, up to `max_distance`
  in the same units) over all of `seg`; pairs are searched only inside
  `subvol_box` (xyz, relative to `seg`), and points are relative to its start.
  Of the touching voxels of a pair, those nearest the original segments win;
  among them, the one nearest their centroid. With `optimize_sparse`, a `seg`
  with fewer than two segments of at least `sparse_noise_threshold` voxels
  returns {} at once, and smaller segments take no part (as upstream; `seg`
  itself is left as it is).
  """
  if optimize_sparse:
    seg = seg.copy()
    _, counts = labels.clean_up_and_count(seg, split_cc=False, min_size=sparse_noise_threshold,
                                          compute_id_map=False)
    if sum(1 for sid in counts if sid > 0) <= 1:
      return {}
  expanded, distance = labels.watershed_expand(seg, voxel_size, max_distance)
  if subvol_box is not None:
    expanded, distance = expanded[subvol_box.to_slice()], distance[subvol_box.to_slice()]
  found = _touching_pairs(expanded, distance)
  if found is None:
    return {}
  a, b, dist, zyx = found
  # Stable: within a pair, touching voxels keep the order they were found in.
  order = np.lexsort((b, a))
  a, b, dist, xyz = a[order], b[order], dist[order], zyx[order][:, ::-1]
  starts = np.flatnonzero(np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])])
  points = {}
  for start, end in zip(starts, np.r_[starts[1:], len(a)]):
    group_dist = dist[start:end]
    nearest = xyz[start:end][group_dist == group_dist.min()]
    centre = np.argmin(np.sum(np.square(nearest - nearest.mean(axis=0)), axis=1))
    points[(int(a[start]), int(b[start]))] = (float(group_dist.min()), nearest[centre])
  return points
