"""Consensus of two FFN segmentations of the same subvolumes (upstream's split consensus).

Split consensus intersects the two segmentations: each overlapping
(segmentation1 id, segmentation2 id) pair becomes its own segment, pieces
smaller than `split_min_size` are dropped, and a segment keeps its
segmentation1 id (and origin) in its largest overlap. Run on a PolicyPeaks
segmentation and a PolicyInvertOrigins one of the same box, this keeps only
the boundaries both runs agree on, which removes many false merges.

Corners are zyx; results use the layout of `results` (`<dir>/<x>/<y>/seg-x_y_z.npz`).
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
from typing import Iterable, Optional

from google.protobuf import message
import numpy as np

from ffn.inference import consensus_pb2
from ffn.inference.io import results
from ffn.utils import checks
from ffn.utils import errors
from ffn.utils import labels
from ffn.utils.axes import ZYX


class ConsensusError(errors.FFNError):
  """A ConsensusRequest or its inputs that cannot give a consensus."""


def _peak_memory_mib() -> float:
  """Peak resident memory of this process, in MiB."""
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  # Linux reports KiB, macOS bytes.
  return peak / (2**20 if sys.platform == 'darwin' else 2**10)


def _check_method(request: consensus_pb2.ConsensusRequest) -> None:
  """Raises ConsensusError unless `request` asks for a consensus this module computes."""
  if request.type != consensus_pb2.ConsensusRequest.CONSENSUS_SPLIT:
    raise ConsensusError(f'ConsensusRequest.type {request.type} is not supported; '
                     'expected CONSENSUS_SPLIT')
  if request.split_min_size < 0:
    raise ConsensusError(f'ConsensusRequest.split_min_size is {request.split_min_size}; '
                     'expected a voxel count >= 0')


def check_request(request: consensus_pb2.ConsensusRequest) -> None:
  """Raises ConsensusError naming the first unusable field of `request`."""
  for field in ('segmentation1', 'segmentation2'):
    source = getattr(request, field)
    if not source.directory:
      raise ConsensusError(f'ConsensusRequest.{field}.directory must be set')
    if source.HasField('threshold'):
      checks.check_number(source.threshold, f'ConsensusRequest.{field}.threshold', checks.UNIT)
    checks.check_number(source.min_size, f'ConsensusRequest.{field}.min_size',
                        checks.NON_NEGATIVE_INT)
    out = request.segmentation_output_dir
    if out and os.path.realpath(out) == os.path.realpath(source.directory):
      raise ConsensusError(f'ConsensusRequest.segmentation_output_dir {out!r} is the '
                           f'{field} directory; writing there would replace its results')
  _check_method(request)


def _check_finished(path: str, request: consensus_pb2.ConsensusRequest) -> None:
  """Raises ConsensusError unless an existing output was made with `request`."""
  with results.open_npz(path) as data:
    saved = data['request'].tobytes() if 'request' in data else None
  if saved is None:
    return  # Written by other tools: nothing to compare.
  before = consensus_pb2.ConsensusRequest()
  try:
    before.ParseFromString(saved)
  except message.DecodeError:
    raise ConsensusError(f'{path} holds an unreadable request; remove it') from None
  now = consensus_pb2.ConsensusRequest()
  now.CopyFrom(request)
  before.ClearField('segmentation_output_dir')
  now.ClearField('segmentation_output_dir')
  if before != now:
    differing = [f.name for f in now.DESCRIPTOR.fields
                 if getattr(before, f.name) != getattr(now, f.name)]
    raise ConsensusError(f'{path} exists but was made with other settings (differing: '
                         f'{", ".join(differing)}); remove it (or the output directory) to '
                         'compute the consensus again')


def compute_consensus_for_segmentations(v1: np.ndarray, v2: np.ndarray,
                                        request: consensus_pb2.ConsensusRequest) -> np.ndarray:
  """The consensus of two uint64 zyx segmentations (`v1` is overwritten), in the smallest uint dtype."""
  _check_method(request)
  labels.split_segmentation_by_intersection(v1, v2, request.split_min_size)
  # Split consensus creates ids above max(v1), so the dtype is only known now.
  return labels.reduce_id_bits(v1)


def compute_consensus(corner: ZYX, request: consensus_pb2.ConsensusRequest
                      ) -> tuple[np.ndarray, dict]:
  """Loads both segmentations of the subvolume at zyx `corner`; returns (consensus, origins).

  The origins are segmentation1's, for the ids that survive; ids created by
  the split have none. Nothing is written.
  """
  check_request(request)
  logging.info('consensus %r: peak memory at start %.0f MiB', tuple(corner), _peak_memory_mib())
  v1, v1_origins = results.load_segmentation_from_source(request.segmentation1, corner)
  v2, _ = results.load_segmentation_from_source(request.segmentation2, corner)
  if v1.shape != v2.shape:
    raise ConsensusError(
        f'subvolume {tuple(int(c) for c in corner)} (zyx) has shape {v1.shape} in '
        f'{request.segmentation1.directory!r} but {v2.shape} in {request.segmentation2.directory!r}')
  logging.info('consensus %r: both loaded, peak memory %.0f MiB', tuple(corner),
               _peak_memory_mib())
  result = compute_consensus_for_segmentations(v1, v2, request)
  ids = np.unique(result)
  origins = {int(i): v1_origins[int(i)] for i in ids if i != 0 and int(i) in v1_origins}
  return result, origins


def consensus_corners(request: consensus_pb2.ConsensusRequest) -> list[tuple[int, int, int]]:
  """The zyx corners segmentation1 has; ConsensusError if segmentation2 lacks any of them."""
  check_request(request)
  dir1, dir2 = request.segmentation1.directory, request.segmentation2.directory
  for directory in (dir1, dir2):
    if not os.path.isdir(directory):
      raise ConsensusError(f'segmentation directory {directory!r} does not exist')
  corners = results.get_existing_corners(dir1)
  if not corners:
    raise ConsensusError(f'{dir1!r} holds no segmentation subvolumes (seg-<x>_<y>_<z>.npz)')
  missing = sorted(set(corners) - set(results.get_existing_corners(dir2)))
  if missing:
    shown = ', '.join(str(c[::-1]) for c in missing[:5])
    raise ConsensusError(f'{dir2!r} lacks {len(missing)} subvolume(s) that {dir1!r} has, '
                     f'at corners (xyz) {shown}')
  return corners


def run_consensus(request: consensus_pb2.ConsensusRequest,
                  corners: Optional[Iterable[ZYX]] = None) -> list[str]:
  """Writes the consensus of every subvolume (default: all of segmentation1's); returns the paths.

  Subvolumes whose output already exists are skipped, so an interrupted run
  resumes where it stopped.
  """
  check_request(request)
  out_dir = request.segmentation_output_dir
  if not out_dir:
    raise ConsensusError('ConsensusRequest.segmentation_output_dir must be set')
  corners = consensus_corners(request) if corners is None else [tuple(c) for c in corners]
  paths, start = [], time.time()
  for i, corner in enumerate(corners, 1):
    path = results.segmentation_path(out_dir, corner)
    paths.append(path)
    if os.path.exists(path):
      _check_finished(path, request)
      logging.info('%s exists; subvolume %r skipped.', path, corner)
      continue
    seg, origins = compute_consensus(corner, request)
    results.save_subvolume(seg, origins, path, request=request.SerializeToString())
    logging.info('consensus %d/%d: %s, %d segments (%.2f subvolumes/s)', i, len(corners), path,
                 int(np.count_nonzero(np.unique(seg))), i / max(time.time() - start, 1e-9))
  return paths
