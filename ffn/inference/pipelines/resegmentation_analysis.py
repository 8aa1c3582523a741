"""Scores of resegmentation results, and the merge decision built on them.

`evaluate_pair_resegmentation` compares the two objects grown around a
decision point with each other (IoU) and with the original segments
(consistency), and counts voxels the network flipped from object to
background while growing them (deleted voxels, a sign of confusion).
`MergeRule` turns those scores into a decision; its defaults are the
conservative rule of upstream's manual (few false merges).

Radii and voxel sizes passed here are zyx; protos hold xyz.
"""

from __future__ import annotations

import dataclasses
import logging
import re

import numpy as np
from scipy import ndimage

from ffn.inference import resegmentation_pb2
from ffn.inference.io import probmaps
from ffn.utils import errors
from ffn.utils import safe_pickle
from ffn.utils.axes import ZYX

_FILENAME_RE = re.compile(r'(\d+)-(\d+)_at_(\d+)_(\d+)_(\d+)')


class InvalidBaseSegmentatonError(errors.FFNError):
  """The original segmentation lacks a segment the resegmentation started from.

  (Spelled as upstream's.)
  """


class IncompleteResegmentationError(errors.FFNError):
  """A pair result does not hold one grown object per segment."""


def compute_iou(reseg: np.ndarray) -> float:
  """The Jaccard index of the two boolean masks stacked in `reseg` ([2, z, y, x]); 0 if both are empty."""
  union = int(np.sum(reseg[0] | reseg[1]))
  return float(np.sum(reseg[0] & reseg[1])) / union if union else 0.0


def parse_resegmentation_filename(filename: str) -> tuple[int, int, int, int, int]:
  """(id_a, id_b, x, y, z) of a `<id_a>-<id_b>_at_<x>_<y>_<z>.npz` result path."""
  match = _FILENAME_RE.search(filename)
  if match is None:
    raise errors.FFNError(f'{filename!r} is not a resegmentation result name '
                     '(expected <id_a>-<id_b>_at_<x>_<y>_<z>.npz)')
  id_a, id_b, x, y, z = (int(t) for t in match.groups())
  return id_a, id_b, x, y, z


def _read_box(seg_volume, center_zyx: ZYX, radius_zyx: ZYX) -> np.ndarray:
  """The zyx labels within `radius` of `center` of a 3-D or (c, z, y, x) volume."""
  box = tuple(slice(int(c) - int(r), int(c) + int(r) + 1) for c, r in zip(center_zyx, radius_zyx))
  if any(s.start < 0 for s in box):
    raise errors.FFNError(f'box of radius {tuple(radius_zyx)} around {tuple(center_zyx)} (zyx) '
                     'starts outside the segmentation')
  if len(seg_volume.shape) == 4:
    return np.asarray(seg_volume[(0,) + box])
  return np.asarray(seg_volume[box])


def load_result(filename: str) -> dict:
  """The arrays of a resegmentation result file, with probabilities dequantised (NaN -> 0)."""
  # Ours store ragged lists as stacked arrays plus `<key>_lengths`; upstream's as
  # pickled object arrays, read through the restricted unpickler.
  with safe_pickle.load_npz(filename) as data:
    out = {'probs': data['probs']}
    for key in ('deletes', 'histories', 'start_points'):
      if f'{key}_lengths' in data:
        lengths = data[f'{key}_lengths']
        out[key] = (np.split(data[key], np.cumsum(lengths)[:-1]) if len(lengths) else [])
      else:
        out[key] = data[key]
  # NaN marks voxels never predicted: not part of the object.
  out['probs'] = np.nan_to_num(probmaps.dequantize_probability(out['probs']))
  return out


def evaluate_segmentation_result(reseg: np.ndarray, dels: np.ndarray, moves: np.ndarray,
                                 delta: ZYX, analysis_r: ZYX, seg1: np.ndarray,
                                 seg2: np.ndarray, sampling: ZYX,
                                 result: resegmentation_pb2.PairResegmentationResult.SegmentResult
                                 ) -> None:
  """Fills `result` for one grown object `reseg` (analysis box, zyx) against the originals.

  `dels[i]` voxels were deleted at FOV position `moves[i]` (zyx, subvolume
  coordinates); only FOVs centred inside the analysis box, which starts at
  `delta` in the subvolume, count.
  """
  result.max_edt = float(ndimage.distance_transform_edt(reseg, sampling=sampling).max())
  dels = np.asarray(dels, dtype=np.int64).reshape(-1)
  moves = np.asarray(moves, dtype=np.int64).reshape(-1, 3)
  if moves.shape[0] and dels.shape[0] == moves.shape[0]:
    low = np.asarray(delta)
    high = low + 2 * np.asarray(analysis_r)
    inside = np.all((moves >= low) & (moves <= high), axis=1)
    result.deleted_voxels = int(np.sum(dels[inside]))
  elif moves.shape[0]:
    # The canvas counts deletions only with inference_options.disco_seed_threshold >= 0.
    logging.warning('%d deletion counts for %d FOVs: deleted_voxels left unset.',
                    dels.shape[0], moves.shape[0])
  result.num_voxels = int(np.sum(reseg))
  result.segment_a_consistency = float(np.sum(reseg[seg1])) / max(int(np.sum(seg1)), 1)
  result.segment_b_consistency = float(np.sum(reseg[seg2])) / max(int(np.sum(seg2)), 1)


def evaluate_endpoint_resegmentation(filename: str, seg_volume, resegmentation_radius: ZYX,
                                     threshold: float = 0.5
                                     ) -> resegmentation_pb2.EndpointResegmentationResult:
  """Scores an endpoint result: how the grown object overlaps each original segment."""
  id_a, _, x, y, z = parse_resegmentation_filename(filename)
  result = resegmentation_pb2.EndpointResegmentationResult(id=id_a)
  result.start.x, result.start.y, result.start.z = x, y, z
  sr = result.segmentation_radius
  sr.z, sr.y, sr.x = (int(r) for r in resegmentation_radius)

  prob = load_result(filename)['probs']
  orig = _read_box(seg_volume, (z, y, x), resegmentation_radius)
  if not np.any(orig == id_a):
    raise InvalidBaseSegmentatonError(f'segment {id_a} is not near ({x}, {y}, {z}) (xyz)')
  new = prob[0] >= threshold
  result.num_voxels = int(np.sum(new))
  ids, counts = np.unique(orig[new], return_counts=True)
  for old, count in zip(ids.tolist(), counts.tolist()):
    overlap = result.overlaps[old]
    overlap.num_overlapping = int(count)
    overlap.num_original = int(np.sum(orig == old))
    if old == id_a:
      result.source.CopyFrom(overlap)
  return result


def evaluate_pair_resegmentation(filename: str, seg_volume, resegmentation_radius: ZYX,
                                 analysis_radius: ZYX, voxel_size: ZYX, threshold: float = 0.5
                                 ) -> resegmentation_pb2.PairResegmentationResult:
  """Scores a pair result file against the original segmentation `seg_volume` (zyx).

  Radii and `voxel_size` are zyx; `threshold` turns the grown objects'
  probabilities into masks. Raises IncompleteResegmentationError unless both
  objects were grown, InvalidBaseSegmentatonError if a segment is absent from
  the analysis box.
  """
  id_a, id_b, x, y, z = parse_resegmentation_filename(filename)
  result = resegmentation_pb2.PairResegmentationResult(id_a=id_a, id_b=id_b)
  result.point.x, result.point.y, result.point.z = x, y, z
  sr = result.segmentation_radius
  sr.z, sr.y, sr.x = (int(r) for r in resegmentation_radius)

  data = load_result(filename)
  prob = data['probs']
  if prob.ndim != 4 or prob.shape[0] != 2:
    raise IncompleteResegmentationError(
        f'{filename} holds {prob.shape[0] if prob.ndim == 4 else 0} grown object(s), expected 2')

  corner_xyz = np.array([x, y, z]) - np.asarray(resegmentation_radius)[::-1]
  for side, points in zip((result.eval.from_a, result.eval.from_b), data['start_points']):
    # After retries, the last start is the one whose object was kept.
    origin = np.asarray(points, dtype=np.int64).reshape(-1, 3)[-1] + corner_xyz
    side.origin.x, side.origin.y, side.origin.z = (int(v) for v in origin)

  analysis_r = np.asarray(analysis_radius, dtype=np.int64)
  r = result.eval.radius
  r.z, r.y, r.x = (int(v) for v in analysis_r)
  seg = _read_box(seg_volume, (z, y, x), analysis_r)
  seg1, seg2 = seg == id_a, seg == id_b
  result.eval.num_voxels_a = int(np.sum(seg1))
  result.eval.num_voxels_b = int(np.sum(seg2))
  if not result.eval.num_voxels_a or not result.eval.num_voxels_b:
    raise InvalidBaseSegmentatonError(
        f'segments {id_a} and {id_b} are not both within {tuple(analysis_r[::-1])} (xyz) '
        f'of ({x}, {y}, {z}) (xyz)')
  result.eval.max_edt_a = float(ndimage.distance_transform_edt(seg1, sampling=voxel_size).max())
  result.eval.max_edt_b = float(ndimage.distance_transform_edt(seg2, sampling=voxel_size).max())

  # The analysis box sits at `delta` within the resegmentation subvolume.
  delta = np.asarray(resegmentation_radius, dtype=np.int64) - analysis_r
  crop = tuple(slice(int(d), int(d + 2 * a + 1)) for d, a in zip(delta, analysis_r))
  reseg = prob[(slice(None),) + crop] >= threshold
  result.eval.iou = compute_iou(reseg)
  for i, side in enumerate((result.eval.from_a, result.eval.from_b)):
    evaluate_segmentation_result(reseg[i], data['deletes'][i], data['histories'][i], delta,
                                 analysis_r, seg1, seg2, voxel_size, side)
  return result


@dataclasses.dataclass(frozen=True)
class MergeRule:
  """When a scored pair is merged; the defaults are upstream's conservative starting point."""

  min_iou: float = 0.8
  min_consistency: float = 0.6
  max_deleted_fraction: float = 0.02

  def should_merge(self, result: resegmentation_pb2.PairResegmentationResult) -> bool:
    """IoU above `min_iou`, all four consistencies above `min_consistency`, and one side
    with fewer deleted voxels than `max_deleted_fraction` of its own."""
    ev = result.eval
    if not ev.iou > self.min_iou:
      return False
    consistencies = (ev.from_a.segment_a_consistency, ev.from_a.segment_b_consistency,
                     ev.from_b.segment_a_consistency, ev.from_b.segment_b_consistency)
    if not all(c > self.min_consistency for c in consistencies):
      return False
    return any(side.num_voxels > 0
               and side.deleted_voxels / side.num_voxels < self.max_deleted_fraction
               for side in (ev.from_a, ev.from_b))
