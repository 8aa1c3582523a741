"""Resegmentation: FFN inference redone locally around a decision point of a segment pair.

For a pair (id_a, id_b) touching near a decision point, a subvolume of
`radius` around the point is loaded with the existing segmentation as context,
the two segments are cleared, and one object is grown from inside each (at
the voxel farthest from its boundary). If the two grown objects agree and
each covers both original segments, the pair probably belongs together
(`resegmentation_analysis` scores this). An endpoint request (no id_b) grows
from id_a only, in an empty subvolume.

Points and radii in the request are xyz; arrays and positions here are zyx.
One result file per point: `<output_directory>/[<md5 prefix>/]<id_a>-<id_b>_at_<x>_<y>_<z>.npz`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from ffn.inference import inference_pb2
from ffn.inference.inference_utils import timer_counter
from ffn.inference.io import probmaps
from ffn.utils import atomic
from ffn.utils import axes
from ffn.utils import bounding_box
from ffn.utils import errors
from ffn.utils import geom_utils
from ffn.utils import probability
from ffn.utils.axes import ZYX


def vector_zyx(vector) -> np.ndarray:
  """A Vector3j proto (xyz) as a zyx int64 array."""
  return axes.zyx(geom_utils.to_3tuple(vector))


# InferenceRequest fields that segment_all uses but resegmentation does not:
# seeds come from the distance transform, and nothing is checkpointed or saved
# in the inference output directory.
UNUSED_INFERENCE_FIELDS = ('seed_policy', 'seed_policy_args', 'checkpoint_interval',
                           'segmentation_output_dir')


def unused_inference_fields(request: inference_pb2.ResegmentationRequest) -> list[str]:
  """The fields of `request.inference` that are set but play no part in resegmentation."""
  return [f'inference.{name}' for name in UNUSED_INFERENCE_FIELDS
          if request.inference.HasField(name)]


def get_starting_location(dists: np.ndarray, exclusion_radius_zyx: ZYX) -> tuple[int, int, int]:
  """The zyx argmax of `dists`; zeroes `dists` within `exclusion_radius_zyx` of it (in place)."""
  pos = np.unravel_index(int(np.argmax(dists)), dists.shape)
  # A retry must start elsewhere.
  near = tuple(slice(max(int(p) - int(r), 0), int(p) + int(r) + 1)
               for p, r in zip(pos, exclusion_radius_zyx))
  dists[near] = 0
  return tuple(int(p) for p in pos)


def result_path(request: inference_pb2.ResegmentationRequest, point_num: int) -> str:
  """The result file of point `point_num`: `<out>/[<md5 prefix>/]<id_a>-<id_b>_at_<x>_<y>_<z>.npz`."""
  point = request.points[point_num]
  output_dir = request.output_directory
  if request.subdir_digits > 0:
    digest = hashlib.md5(f'{point.id_a}{point.id_b}'.encode()).hexdigest()
    output_dir = os.path.join(output_dir, digest[:request.subdir_digits])
  p = point.point
  return os.path.join(output_dir, f'{point.id_a}-{point.id_b}_at_{p.x}_{p.y}_{p.z}.npz')


def get_target_path(request: inference_pb2.ResegmentationRequest, point_num: int) -> Optional[str]:
  """Where the result of point `point_num` goes; None when that file exists already."""
  path = result_path(request, point_num)
  if os.path.exists(path):
    logging.info('Resegmentation result %s exists; point %d skipped.', path, point_num)
    return None
  return path


def subvolume_box(point_zyx: ZYX, radius_zyx: ZYX) -> bounding_box.BoundingBox:
  """The box of the resegmentation subvolume: `radius` voxels on each side of the point."""
  radius = np.asarray(radius_zyx, dtype=np.int64)
  return bounding_box.BoundingBox.from_zyx(np.asarray(point_zyx) - radius, 2 * radius + 1)


def get_canvas(point_zyx: ZYX, radius_zyx: ZYX, runner):
  """(Canvas, Alignment) for the subvolume around `point_zyx`, or (None, None) without context.

  The runner's request must have an init_segmentation; the subvolume must lie
  inside it.
  """
  volume = runner.init_seg_volume
  if volume is None:
    raise errors.FFNError('resegmentation needs ResegmentationRequest.inference.init_segmentation')
  box = subvolume_box(point_zyx, radius_zyx)
  shape = np.asarray(volume.shape[-3:])
  if np.any(box.start < 0) or np.any(box.end > shape[::-1]):
    logging.warning('Not enough context around %r (xyz): subvolume start %r end %r (xyz) '
                    'leaves the segmentation of size %r (xyz).', axes.xyz(point_zyx),
                    tuple(box.start), tuple(box.end), axes.xyz(shape))
    return None, None
  # Resegmentation of one point is short; it is redone rather than resumed.
  return runner.make_canvas(box.start_zyx, box.size_zyx, checkpoint=False, keep_history=True)


def _analysis_box(request: inference_pb2.ResegmentationRequest, radius_zyx: np.ndarray,
                  shape_zyx: Sequence[int]) -> bounding_box.BoundingBox:
  """The analysis box within the subvolume (centred; the whole subvolume by default)."""
  if not request.HasField('analysis_radius'):
    return bounding_box.BoundingBox.from_zyx((0, 0, 0), shape_zyx)
  ar = vector_zyx(request.analysis_radius)
  return bounding_box.BoundingBox.from_zyx(radius_zyx - ar, 2 * ar + 1)


def _recovered_fraction(seg: np.ndarray, prob: np.ndarray, box: bounding_box.BoundingBox,
                        threshold: float) -> tuple[float, int]:
  """(fraction of `seg` in `box` with prob >= threshold, that voxel count)."""
  crop_seg = seg[box.to_slice()]
  covered = int(np.sum((prob[box.to_slice()] >= threshold) & crop_seg))
  size = int(np.sum(crop_seg))
  return (covered / size if size else 0.0), covered


def _seed_distances(seg: np.ndarray, margin: np.ndarray, voxel_size_zyx: ZYX,
                    exclusion: Optional[tuple]) -> np.ndarray:
  """Distance from the boundary inside `seg`, 0 near the subvolume border and in `exclusion`."""
  dists = ndimage.distance_transform_edt(seg, sampling=voxel_size_zyx)
  # A seed needs a full field of view of context.
  interior = tuple(slice(int(m), max(int(s) - int(m), 0)) for m, s in zip(margin, seg.shape))
  keep = np.zeros(seg.shape, dtype=bool)
  keep[interior] = True
  dists[~keep] = 0
  if exclusion is not None:
    dists[exclusion] = 0
  return dists


def _ragged_arrays(name: str, items: list) -> dict[str, np.ndarray]:
  """Ragged int arrays stacked along their first axis plus `<name>_lengths`: no pickle needed."""
  arrays = [np.asarray(item, dtype=np.int64) for item in items]
  stacked = np.concatenate(arrays) if arrays else np.zeros(0, np.int64)
  return {name: stacked, f'{name}_lengths': np.array([len(a) for a in arrays], np.int64)}


def process_point(request: inference_pb2.ResegmentationRequest, runner, point_num: int,
                  voxel_size_zyx: ZYX) -> Optional[str]:
  """Resegments the pair (or endpoint) `request.points[point_num]`; returns the file written.

  Returns None (and writes nothing) when the result exists, the subvolume
  leaves the segmentation, or a segment is absent from it. `voxel_size_zyx`
  scales the distance transform that picks the seeds.
  """
  with timer_counter(runner.counters, 'resegmentation'):
    target_path = get_target_path(request, point_num)
    if target_path is None:
      return None
    curr = request.points[point_num]
    point = vector_zyx(curr.point)
    radius = vector_zyx(request.radius)
    canvas, alignment = get_canvas(point, radius, runner)
    if canvas is None:
      logging.warning('Point %d: no canvas; skipped.', point_num)
      return None
    try:
      return _resegment(request, canvas, alignment, curr, point, radius, voxel_size_zyx,
                        target_path)
    finally:
      canvas.close()


def _original_segments(canvas, curr) -> Optional[list[np.ndarray]]:
  """Masks of id_a (and id_b) in the canvas, or None if one is absent there."""
  ids = [curr.id_a] + ([curr.id_b] if curr.HasField('id_b') else [])
  masks = []
  for segment_id in ids:
    # An id missing from the subvolume must not alias a local id of another segment.
    local = canvas.global_to_local_ids.get(int(segment_id))
    mask = canvas.segmentation == local if local is not None else None
    if mask is None or not mask.any():
      logging.warning('Segment %d is not in the subvolume at %r (zyx corner); skipped.',
                      segment_id, canvas.corner_zyx)
      return None
    masks.append(mask)
  return masks


def _resegment(request: inference_pb2.ResegmentationRequest, canvas, alignment,
               curr: inference_pb2.ResegmentationPoint, point: np.ndarray, radius: np.ndarray,
               voxel_size_zyx: ZYX, target_path: str) -> Optional[str]:
  """The body of `process_point` once the canvas exists (point and radius zyx)."""
  todo = _original_segments(canvas, curr)
  if todo is None:
    return None
  shift_mask = canvas.restrictor.shift_mask if canvas.restrictor is not None else None
  is_shift = shift_mask is not None and bool(np.any(shift_mask))
  if len(todo) == 1:
    canvas.segmentation[:] = 0
    canvas.seg_prob[:] = 0
  else:
    # The pair is cleared; every other segment stays as context the FOV cannot enter.
    for seg in todo:
      canvas.segmentation[seg] = 0
      canvas.seg_prob[seg] = 0

  local_point = alignment.transform(point[:, np.newaxis])[:, 0] - np.asarray(canvas.corner_zyx)
  exclusion = None
  if request.HasField('init_exclusion_radius'):
    ier = vector_zyx(request.init_exclusion_radius)
    exclusion = tuple(slice(max(int(p - r), 0), int(p + r + 1))
                      for p, r in zip(local_point, ier))
  analysis_box = _analysis_box(request, radius, canvas.shape)
  options = request.inference.inference_options
  exclusion_radius = vector_zyx(request.exclusion_radius)

  raw_probs, probs, deletes, histories = [], [], [], []
  start_points = [[] for _ in todo]
  for i, seg in enumerate(todo):
    canvas.log_info('resegmenting from object %d of %d', i + 1, len(todo))
    with timer_counter(canvas.counters, 'edt'):
      dists = _seed_distances(seg, canvas.margin, voxel_size_zyx, exclusion)
    seg_prob, recovered = None, False
    for _ in range(request.max_retry_iters):
      start = get_starting_location(dists, exclusion_radius)
      if not seg[start]:
        # No seed candidate left inside the segment.
        continue
      canvas.log_info('starting at (xyz) %r', start[::-1])
      canvas.segment_at(start)
      seg_prob = probability.expit(canvas.object_map)
      start_points[i].append(start[::-1])
      fraction, covered = _recovered_fraction(seg, seg_prob, analysis_box,
                                              options.segment_threshold)
      if request.segment_recovery_fraction > 0:
        recovered = fraction >= request.segment_recovery_fraction
      else:
        recovered = covered >= options.min_segment_size
      if recovered:
        break

    if seg_prob is not None:
      qprob = probmaps.quantize_probability(seg_prob)
      raw_probs.append(qprob)
      probs.append(alignment.align_and_crop(canvas.corner_zyx, qprob, alignment.corner,
                                            alignment.size, forward=False))
      deletes.append(np.array(canvas.history_deleted, dtype=np.int64))
      histories.append(np.array(canvas.history, dtype=np.int64).reshape(-1, 3))

    if request.terminate_early:
      if not recovered:
        break
      if request.segment_recovery_fraction > 0 and i == 0 and len(todo) > 1:
        # The first object must already reach into the second one.
        fraction_b, _ = _recovered_fraction(todo[1], seg_prob, analysis_box,
                                            options.segment_threshold)
        if fraction_b < request.segment_recovery_fraction:
          break

  canvas.log_info('saving resegmentation to %s', target_path)
  with atomic.atomic_open(target_path, 'wb') as f:
    np.savez_compressed(
        f, probs=np.array(probs), raw_probs=np.array(raw_probs),
        **_ragged_arrays('deletes', deletes), **_ragged_arrays('histories', histories),
        **_ragged_arrays('start_points', [np.asarray(p, dtype=np.int64).reshape(-1, 3)
                                          for p in start_points]),
        request=request.SerializeToString(), counters=canvas.counters.dumps(),
        corner_zyx=np.array(canvas.corner_zyx), is_shift=is_shift)
  return target_path


def process(request: inference_pb2.ResegmentationRequest, runner,
            voxel_size_zyx: ZYX) -> list[str]:
  """Runs `process_point` for every point of the request; returns the files written."""
  written = []
  for i in range(len(request.points)):
    logging.info('Resegmentation point %d/%d.', i + 1, len(request.points))
    path = process_point(request, runner, i, voxel_size_zyx)
    if path is not None:
      written.append(path)
  return written
