"""The work behind run_resegmentation.py: pairs -> resegmentation -> decisions -> merged segmentation.

Outputs, in the request's output_directory: one resegmentation result per
pair (`<id_a>-<id_b>_at_<x>_<y>_<z>.npz`), `decisions.jsonl` (one JSON object
per pair: ids, xyz point, merge, scores) and the agglomerated segmentation
in a new volume (any spec form of `ffn.utils.volumes`).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Optional, Sequence

import numpy as np

from ffn.inference import inference_pb2
from ffn.inference.pipelines import agglomeration
from ffn.inference.pipelines import resegmentation
from ffn.inference.pipelines import resegmentation_analysis
from ffn.inference.request import runner as runner_lib
from ffn.utils import atomic
from ffn.utils import errors
from ffn.utils import volumes

DECISIONS_FILE = 'decisions.jsonl'

# (id_a, id_b, optional zyx decision point)
PairSpec = tuple[int, int, Optional[tuple[int, int, int]]]


def read_pairs(path: str) -> list[PairSpec]:
  """Pairs from a text file: `id_a,id_b` or `id_a,id_b,x,y,z` per line; `#` starts a comment."""
  pairs = []
  with open(path, encoding='utf-8') as f:
    for num, line in enumerate(f, 1):
      line = line.split('#', 1)[0].strip()
      if not line:
        continue
      fields = [v.strip() for v in line.replace(' ', ',').split(',') if v.strip()]
      try:
        values = [int(v) for v in fields]
      except ValueError:
        values = []
      if len(values) not in (2, 5) or min(values) < 0 or values[0] == values[1]:
        raise errors.FFNError(f'{path}:{num}: {line!r} is not "id_a,id_b" or "id_a,id_b,x,y,z" '
                         '(non-negative integers, two different ids)')
      point = tuple(values[2:][::-1]) if len(values) == 5 else None
      pairs.append((values[0], values[1], point))
  if not pairs:
    raise errors.FFNError(f'{path} lists no pairs')
  return pairs


def read_whole_volume(volume: volumes.Volume) -> np.ndarray:
  """All of a 3-D or (c, z, y, x) label volume, as a zyx array."""
  return volume[0] if volume.ndim == 4 else volume[...]


def candidate_pairs(seg: np.ndarray, pairs: Optional[Sequence[PairSpec]],
                    max_distance: int) -> list[agglomeration.CandidatePair]:
  """The touching pairs of `seg`, or the listed `pairs` (those without a point get one)."""
  touching = agglomeration.find_candidate_pairs(seg, max_distance)
  if pairs is None:
    return touching
  by_ids = {(p.id_a, p.id_b): p for p in touching}
  out = []
  for id_a, id_b, point in pairs:
    if point is not None:
      out.append(agglomeration.CandidatePair(id_a, id_b, point, 0))
      continue
    found = by_ids.get((min(id_a, id_b), max(id_a, id_b)))
    if found is None:
      raise errors.FFNError(f'segments {id_a} and {id_b} do not come within {max_distance} voxel(s) '
                       'of each other; give their decision point as id_a,id_b,x,y,z')
    out.append(agglomeration.CandidatePair(id_a, id_b, found.point_zyx, found.contacts))
  return out


def output_path(spec: str) -> Optional[str]:
  """The file or directory a new volume of `spec` will occupy (None if not on local disk)."""
  parsed = volumes.parse_spec(spec)
  if isinstance(parsed, volumes.VolumeSpec):
    return parsed.path
  kvstore = volumes.tensorstore_spec(parsed).get('kvstore')
  if isinstance(kvstore, dict) and kvstore.get('driver') == 'file':
    return kvstore.get('path')
  return None


def write_segmentation(spec: str, seg: np.ndarray) -> None:
  """Writes the zyx `seg` as a new volume `spec` (under its name only once complete)."""
  with volumes.create_volume(spec, seg.shape, seg.dtype) as out:
    out[...] = seg


def write_decisions(path: str, decisions: Sequence[agglomeration.PairDecision]) -> None:
  """Writes one JSON object per decision (atomically)."""
  lines = [json.dumps(d.to_json_dict(), sort_keys=True) for d in decisions]
  atomic.atomic_write_text(path, ''.join(line + '\n' for line in lines))


def _copy(request: inference_pb2.ResegmentationRequest) -> inference_pb2.ResegmentationRequest:
  copy = inference_pb2.ResegmentationRequest()
  copy.CopyFrom(request)
  return copy


def run_agglomeration(request: inference_pb2.ResegmentationRequest, output_volume: str,
                      voxel_size_zyx: Sequence[float],
                      rule: resegmentation_analysis.MergeRule = resegmentation_analysis.MergeRule(),
                      threshold: float = 0.5, pairs: Optional[Sequence[PairSpec]] = None,
                      max_pair_distance: int = 1, model=None
                      ) -> list[agglomeration.PairDecision]:
  """Resegments the request's points (or `pairs`, or the touching pairs), decides, merges, writes.

  `model` (with `info` and `predict_logits`) replaces the one the request names.
  """
  if not request.output_directory:
    raise errors.FFNError('ResegmentationRequest.output_directory must be set')
  if request.points and pairs is not None:
    raise errors.FFNError('the request lists points and pairs were given too; use one of them')
  for i, point in enumerate(request.points):
    if not point.HasField('id_b'):
      raise errors.FFNError(f'ResegmentationRequest.points[{i}] has no id_b; only pairs are '
                       'agglomerated')
  unused = resegmentation.unused_inference_fields(request)
  request = _copy(request)  # Points are added to it; the caller's stays as it was.
  inference = request.inference
  if not inference.segmentation_output_dir:
    # The Runner wants one; resegmentation writes nothing there.
    inference.segmentation_output_dir = request.output_directory
  runner = runner_lib.Runner(inference, model=model)
  if runner.init_seg_volume is None:
    raise errors.FFNError('ResegmentationRequest.inference.init_segmentation must name the '
                     'segmentation to agglomerate')
  seg = read_whole_volume(runner.init_seg_volume)
  if not request.points:
    found = candidate_pairs(seg, pairs, max_pair_distance)
    logging.info('%d candidate pair(s).', len(found))
    agglomeration.add_points(request, found)
  if unused:
    # Logged once the input is known to be good, so that bad input gives one line.
    logging.warning('Not used by resegmentation (seeds come from the segments): %s.',
                    ', '.join(unused))
  with runner:
    decisions = agglomeration.resegment_and_decide(request, runner, voxel_size_zyx, rule,
                                                   threshold)
  merges = [(d.point.id_a, d.point.id_b) for d in decisions if d.merge]
  logging.info('%d of %d pair(s) merged.', len(merges), len(decisions))
  write_decisions(os.path.join(request.output_directory, DECISIONS_FILE), decisions)
  write_segmentation(output_volume, agglomeration.merge_segments(seg, merges))
  return decisions
