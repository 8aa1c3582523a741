"""Agglomeration by resegmentation: candidate pairs, merge decisions, the merged segmentation.

Candidates are pairs of segments that come within `max_distance` voxels of
each other along an axis (touching, or across a thin gap such as a membrane).
Each pair's decision point is the contact nearest to the middle of all its
contacts, so that it lies where the two segments actually meet. Arrays and
points here are zyx.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Iterable, Optional, Sequence

from google.protobuf import json_format
import numpy as np

from ffn.inference import inference_pb2
from ffn.inference import resegmentation_pb2
from ffn.inference.pipelines import resegmentation
from ffn.inference.pipelines import resegmentation_analysis
from ffn.utils import errors


@dataclasses.dataclass(frozen=True)
class CandidatePair:
  """Two segment ids, the zyx decision point, and their number of contacts (0 if not counted)."""

  id_a: int
  id_b: int
  point_zyx: tuple[int, int, int]
  contacts: int


def _contacts(seg: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(id_a, id_b, zyx midpoints) of every pair of voxels of two segments up to `max_distance` apart along an axis."""
  ids_a, ids_b, points = [], [], []
  for axis in range(seg.ndim):
    for d in range(1, max_distance + 1):
      if seg.shape[axis] <= d:
        break
      low = seg[(slice(None),) * axis + (slice(0, seg.shape[axis] - d),)]
      high = seg[(slice(None),) * axis + (slice(d, None),)]
      touch = (low != high) & (low != 0) & (high != 0)
      where = np.nonzero(touch)
      a, b = low[where], high[where]
      mid = np.stack(where, axis=1).astype(np.int64)
      mid[:, axis] += d // 2
      ids_a.append(np.minimum(a, b))
      ids_b.append(np.maximum(a, b))
      points.append(mid)
  if not ids_a:
    empty = np.zeros(0, dtype=seg.dtype)
    return empty, empty, np.zeros((0, 3), dtype=np.int64)
  return np.concatenate(ids_a), np.concatenate(ids_b), np.concatenate(points)


def find_candidate_pairs(seg: np.ndarray, max_distance: int = 1) -> list[CandidatePair]:
  """The pairs of segments of the zyx `seg` within `max_distance` voxels along an axis, sorted by ids."""
  if max_distance < 1:
    raise errors.FFNError(f'max_distance is {max_distance}; expected at least 1 voxel')
  seg = np.asarray(seg)
  ids_a, ids_b, points = _contacts(seg, max_distance)
  if not ids_a.size:
    return []
  keys = np.stack([ids_a.astype(np.uint64), ids_b.astype(np.uint64)], axis=1)
  pairs, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
  inverse = inverse.reshape(-1)
  centres = np.stack([np.bincount(inverse, weights=points[:, k]) for k in range(3)],
                     axis=1) / counts[:, np.newaxis]
  dist = np.sum((points - centres[inverse]) ** 2, axis=1)
  # The contact nearest its pair's centre (ties: the first in scan order).
  order = np.lexsort((np.arange(dist.size), dist, inverse))
  first = np.ones(order.size, dtype=bool)
  first[1:] = inverse[order][1:] != inverse[order][:-1]
  best = order[first]
  return [CandidatePair(int(a), int(b), tuple(int(v) for v in points[i]), int(n))
          for (a, b), i, n in zip(pairs.tolist(), best, counts.tolist())]


def merge_segments(seg: np.ndarray, pairs: Iterable[tuple[int, int]]) -> np.ndarray:
  """A copy of `seg` where each group of segments linked by `pairs` takes its smallest id."""
  parent: dict[int, int] = {}

  def find(x: int) -> int:
    """The root of `x`'s group (compressing the path to it)."""
    root = x
    while parent.get(root, root) != root:
      root = parent[root]
    while parent.get(x, x) != root:
      parent[x], x = root, parent[x]
    return root

  for a, b in pairs:
    ra, rb = find(int(a)), find(int(b))
    if ra != rb:
      parent[max(ra, rb)] = min(ra, rb)
  out = np.array(seg, copy=True)
  if not parent:
    return out
  old = np.array(sorted(parent), dtype=out.dtype)
  new = np.array([find(int(x)) for x in old.tolist()], dtype=out.dtype)
  ids, inverse = np.unique(out, return_inverse=True)
  lookup = ids.copy()
  hit = np.isin(ids, old)
  lookup[hit] = new[np.searchsorted(old, ids[hit])]
  return lookup[inverse.reshape(out.shape)]


@dataclasses.dataclass
class PairDecision:
  """The outcome of one resegmentation point: its scores (None if not scored) and the decision."""

  point: inference_pb2.ResegmentationPoint
  result: Optional[resegmentation_pb2.PairResegmentationResult]
  merge: bool
  note: str = ''

  def to_json_dict(self) -> dict:
    """A JSON-ready dict: ids, xyz point, decision, note and the scores (proto field names)."""
    p = self.point.point
    out = {'id_a': int(self.point.id_a), 'id_b': int(self.point.id_b),
           'point_xyz': [int(p.x), int(p.y), int(p.z)], 'merge': self.merge}
    if self.note:
      out['note'] = self.note
    if self.result is not None:
      out['result'] = json_format.MessageToDict(self.result, preserving_proto_field_name=True)
    return out


def add_points(request: inference_pb2.ResegmentationRequest,
               pairs: Iterable[CandidatePair]) -> None:
  """Appends one ResegmentationPoint per candidate pair to `request`."""
  for pair in pairs:
    point = request.points.add(id_a=pair.id_a, id_b=pair.id_b)
    point.point.z, point.point.y, point.point.x = pair.point_zyx


def resegment_and_decide(request: inference_pb2.ResegmentationRequest, runner,
                         voxel_size_zyx: Sequence[float],
                         rule: resegmentation_analysis.MergeRule = resegmentation_analysis.MergeRule(),
                         threshold: float = 0.5) -> list[PairDecision]:
  """Resegments every pair point of `request` with `runner`, scores it and applies `rule`.

  Points whose subvolume does not fit, whose segments are absent or whose
  resegmentation is incomplete are not merged, with a note saying why. An
  existing result file is scored again, not recomputed.
  """
  radius = resegmentation.vector_zyx(request.radius)
  analysis_radius = resegmentation.vector_zyx(
      request.analysis_radius if request.HasField('analysis_radius') else request.radius)
  decisions, start = [], time.time()
  for i, point in enumerate(request.points):
    if not point.HasField('id_b'):
      raise errors.FFNError(f'ResegmentationRequest.points[{i}] has no id_b; only pairs are '
                       'agglomerated (endpoint requests: resegmentation.process_point)')
    path = resegmentation.result_path(request, i)
    if not os.path.exists(path):
      path = resegmentation.process_point(request, runner, i, voxel_size_zyx)
    decisions.append(_decide(point, path, runner.init_seg_volume, radius, analysis_radius,
                             voxel_size_zyx, rule, threshold))
    rate = (i + 1) / max(time.time() - start, 1e-9)
    logging.info('Pair %d/%d (%d, %d): %s (%.2f pairs/s)', i + 1, len(request.points),
                 point.id_a, point.id_b, 'merge' if decisions[-1].merge else 'keep', rate)
  return decisions


def _decide(point, path: Optional[str], seg_volume, radius, analysis_radius, voxel_size_zyx,
            rule: resegmentation_analysis.MergeRule, threshold: float) -> PairDecision:
  """Scores the result file of one point and applies `rule`."""
  if path is None:
    return PairDecision(point, None, False, 'not resegmented (no context or segment absent)')
  try:
    result = resegmentation_analysis.evaluate_pair_resegmentation(
        path, seg_volume, radius, analysis_radius, voxel_size_zyx, threshold)
  except (resegmentation_analysis.IncompleteResegmentationError,
          resegmentation_analysis.InvalidBaseSegmentatonError) as e:
    return PairDecision(point, None, False, str(e))
  return PairDecision(point, result, rule.should_merge(result))
