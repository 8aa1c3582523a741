"""Scores a segmentation against groundtruth: VI split/merge, adapted Rand error, worst offenders.

Groundtruth 0 is "unlabelled": those voxels are left out of every score, and so
are the groundtruth labels in `ignore_labels` (e.g. a glia or "uncertain" id).
Segmentation 0 ("not segmented") is counted by one of three conventions:
  * `seg_zero='singletons'` (the default; this project's own convention, neither
    CREMI's nor SNEMI3D's): each unsegmented voxel is its own segment, in VI and
    in the Rand error alike, so leaving voxels out costs recall, not precision.
    It equals scikit-image's `variation_of_information` and
    `adapted_rand_error` on a segmentation whose 0s were first given one new id
    each.
  * `seg_zero='segment'`: every unsegmented voxel is in one segment 0, in VI and
    in the Rand error. Its VI is the one the cremi package's `voi` computes
    (`ignore_groundtruth=[0]`, `ignore_reconstruction=[]`); its Rand error is
    scikit-image's `adapted_rand_error` with its defaults (`ignore_labels=(0,)`,
    groundtruth only), not cremi's.
  * `seg_zero='cremi'`: CREMI's published pair, as the cremi package
    (cremi_python, `cremi/evaluation/voi.py` and `rand.py`) computes it. VI as
    `segment`. The adapted Rand error counts ordered pairs with a voxel paired
    with itself (n_ij^2, not n_ij(n_ij - 1)); a groundtruth body's pairs include
    its unsegmented voxels (recall falls), but those voxels add only c/n to both
    the segment pairs and the agreeing pairs, where c is the number of
    unsegmented scored voxels and n every voxel of the compared region,
    unlabelled ones included (its SNEMI3D-derived formula). A singleton with its
    self-pair would add 1 per voxel there, so this is singletons less their
    self-pairs, nearly.
    CREMI's `NeuronIds` class marks "no label" as 2^64-1 in the groundtruth
    file and shifts every label by one, so its groundtruth 0 is a body; here
    groundtruth 0 is always unlabelled, and such a file needs
    `ignore_labels=[2**64 - 1]`.

Definitions (n_ij = voxels in groundtruth body i and segment j, over the scored voxels):
  * VI split = H(segmentation | groundtruth), VI merge = H(groundtruth | segmentation),
    in bits; a pure over-segmentation has merge 0, a pure merger split 0.
  * Adapted Rand over pairs of distinct voxels (ordered pairs with self-pairs for
    `cremi`): precision = P(same groundtruth | same segment), recall = P(same
    segment | same groundtruth), error = 1 - F1. A pure over-segmentation has
    precision 1, a pure merger recall 1.
The metrics of `singletons` and `segment` come from scikit-image. Its
`adapted_rand_error` (0.26) returns these two the other way round from its
docstring; which way the installed version goes is checked once on a toy
over-segmentation, so both work.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Optional, Sequence

import numpy as np
from scipy import ndimage
from scipy import sparse
from skimage import metrics

from ffn.analysis import results
from ffn.analysis import targets
from ffn.utils import axes
from ffn.utils import bounding_box
from ffn.utils import errors
from ffn.utils import volumes

SEG_ZERO_MODES = ('singletons', 'segment', 'cremi')
BORDER_MODES = ('2d', '3d')


class EvaluationError(errors.FFNError):
  """Inputs that cannot be compared (shapes, boxes, options)."""


@functools.cache
def _skimage_swaps_precision_recall() -> bool:
  """Whether skimage's adapted_rand_error returns (error, recall, precision) in our terms."""
  truth = np.array([1, 1, 1, 1])
  over_segmented = np.array([1, 1, 2, 2])  # Precision 1, recall 1/3.
  _, first, _ = metrics.adapted_rand_error(truth, over_segmented, ignore_labels=())
  return not np.isclose(first, 1.0)


@dataclasses.dataclass(frozen=True)
class BorderExclusion:
  """Leave out voxels within `distance` of a groundtruth boundary.

  `distance` is in voxels, or in physical units (e.g. nm) when `voxel_size_xyz`
  is given. Mode '2d' measures within each xy slice (CREMI's rule: 25 nm at
  4x4x40 nm), '3d' in the volume.
  """
  distance: float
  voxel_size_xyz: Optional[tuple[float, float, float]] = None
  mode: str = '2d'


def groundtruth_border_mask(groundtruth: np.ndarray, exclusion: BorderExclusion) -> np.ndarray:
  """True for the voxels within `exclusion.distance` of a boundary between groundtruth labels."""
  if exclusion.mode not in BORDER_MODES:
    raise EvaluationError(f'border mode must be one of {BORDER_MODES}, got {exclusion.mode!r}')
  if exclusion.distance < 0:
    raise EvaluationError(f'border distance must be >= 0, got {exclusion.distance}')
  sampling_zyx = (1.0, 1.0, 1.0)
  if exclusion.voxel_size_xyz is not None:
    if len(exclusion.voxel_size_xyz) != 3 or min(exclusion.voxel_size_xyz) <= 0:
      raise EvaluationError(
          f'voxel size must be 3 positive numbers (xyz), got {exclusion.voxel_size_xyz!r}')
    sampling_zyx = tuple(float(v) for v in axes.xyz_to_zyx(exclusion.voxel_size_xyz))

  measured = (1, 2) if exclusion.mode == '2d' else (0, 1, 2)
  # A boundary voxel differs from one of its face neighbours along the measured axes.
  boundary = np.zeros(groundtruth.shape, dtype=bool)
  for axis in measured:
    differs = np.diff(groundtruth, axis=axis) != 0
    lower = [slice(None)] * 3
    upper = [slice(None)] * 3
    lower[axis] = slice(None, -1)
    upper[axis] = slice(1, None)
    boundary[tuple(lower)] |= differs
    boundary[tuple(upper)] |= differs

  if exclusion.mode == '3d':
    distance = ndimage.distance_transform_edt(~boundary, sampling=sampling_zyx)
    return distance <= exclusion.distance
  mask = np.zeros(groundtruth.shape, dtype=bool)
  for z in range(groundtruth.shape[0]):
    if boundary[z].any():
      distance = ndimage.distance_transform_edt(~boundary[z], sampling=sampling_zyx[1:])
      mask[z] = distance <= exclusion.distance
  return mask


@dataclasses.dataclass
class Offender:
  """One object to go and look at: a merging segment or a split groundtruth body."""
  label: int
  size: int  # Scored voxels of this object.
  count: int  # Groundtruth bodies it merges / segments it is split into.
  partners: list[tuple[int, int]]  # (other label, overlap voxels), largest first, up to 10.
  unsegmented: int  # For bodies: scored voxels with segmentation 0.
  position_xyz: list[int]  # A voxel of the object near its centroid (global xyz).
  box_start_xyz: list[int]
  box_end_xyz: list[int]


@dataclasses.dataclass
class EvaluationResult:
  """The scores of one comparison, plus what was compared."""
  vi_split: float
  vi_merge: float
  adapted_rand_error: float
  rand_precision: float
  rand_recall: float
  scored_voxels: int
  total_voxels: int
  ignored_label_voxels: dict[int, int]  # Voxels of each ignore_labels value in the region.
  excluded_border_voxels: int
  unsegmented_voxels: int  # Scored voxels with segmentation 0.
  num_groundtruth_bodies: int
  num_segments: int  # Non-zero segments touching the scored voxels.
  seg_zero: str
  min_overlap: int
  box: dict[str, list[int]]  # Global xyz start/size of the compared region.
  mergers: list[Offender]
  splits: list[Offender]
  inputs: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def vi_total(self) -> float:
    """VI split + merge."""
    return self.vi_split + self.vi_merge

  def to_json_dict(self) -> dict[str, Any]:
    """A JSON-ready dict (NaN becomes null)."""
    def clean(value):
      if isinstance(value, float) and not math.isfinite(value):
        return None
      if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
      if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
      return value
    data = dataclasses.asdict(self)
    data['vi_total'] = self.vi_total
    data['ignored_label_voxels'] = {str(k): v for k, v in self.ignored_label_voxels.items()}
    data['label_zero_convention'] = {
        'groundtruth': 'ignored', 'segmentation': SEG_ZERO_WORDS[self.seg_zero]}
    return clean(data)


# How each seg_zero mode counts segmentation 0, in the report's words (see the module doc).
SEG_ZERO_WORDS = {
    'singletons': 'singletons (each voxel its own segment)',
    'segment': 'one segment',
    'cremi': "CREMI's pair: one segment for VI, cremi's adapted_rand for the Rand error",
}


def _cremi_adapted_rand(table: sparse.csr_array, zero_column: Optional[int],
                        total_voxels: int) -> tuple[float, float, float]:
  """(error, precision, recall) as cremi's `adapted_rand` gives them from a body x segment table.

  Pairs are ordered and include a voxel with itself; the unsegmented voxels
  (column `zero_column`, if any) count in their bodies' sizes and add
  c / `total_voxels` to the segment and agreeing pair sums.
  """
  table = sparse.csr_array(table, dtype=np.float64)
  body_sizes = np.ravel(table.sum(axis=1))
  unsegmented = 0.0
  if zero_column is not None:
    unsegmented = float(table[:, [zero_column]].sum())
    keep = np.ones(table.shape[1], dtype=bool)
    keep[zero_column] = False
    table = sparse.csr_array(table[:, np.flatnonzero(keep)])
  segment_sizes = np.ravel(table.sum(axis=0))
  body_pairs = float(np.sum(body_sizes ** 2))
  segment_pairs = float(np.sum(segment_sizes ** 2)) + unsegmented / total_voxels
  agreeing_pairs = float(np.sum(table.data ** 2)) + unsegmented / total_voxels
  precision = agreeing_pairs / segment_pairs
  recall = agreeing_pairs / body_pairs
  if precision + recall == 0:
    return 1.0, precision, recall
  return 1.0 - 2.0 * precision * recall / (precision + recall), precision, recall


_DENSE_LABEL_LIMIT = 1 << 25  # Below this, a lookup table beats sorting.


def _compact(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(sorted unique labels, index of each voxel's label in them), labels flattened."""
  labels = labels.reshape(-1)
  if labels.size and int(labels.max()) < _DENSE_LABEL_LIMIT:
    present = np.flatnonzero(np.bincount(labels.astype(np.intp)))
    lookup = np.zeros(int(present[-1]) + 1, dtype=np.intp)
    lookup[present] = np.arange(len(present))
    return present.astype(labels.dtype), lookup[labels]
  ids, inverse = np.unique(labels, return_inverse=True)
  return ids, inverse.reshape(-1)


def _object_positions(labels: np.ndarray, wanted: Sequence[int],
                      offset_xyz: np.ndarray) -> dict[int, tuple[list[int], list[int], list[int]]]:
  """For each wanted label: (a voxel near its centroid, box start, box end), global xyz."""
  result = {}
  for label in wanted:
    mask = labels == label
    profiles = [mask.sum(axis=plane) for plane in ((1, 2), (0, 2), (0, 1))]
    if not profiles[0].any():
      continue
    centroid = [float(np.average(np.arange(len(p)), weights=p)) for p in profiles]
    start = [int(np.flatnonzero(p)[0]) for p in profiles]
    end = [int(np.flatnonzero(p)[-1]) + 1 for p in profiles]
    # The object's voxel nearest the centroid within the populated slice nearest it in z.
    zs = np.flatnonzero(profiles[0])
    z = int(zs[np.argmin(np.abs(zs - centroid[0]))])
    yx = np.argwhere(mask[z])
    nearest = yx[np.argmin(((yx - centroid[1:]) ** 2).sum(axis=1))]
    to_xyz = lambda zyx: [int(v) for v in (np.asarray(zyx)[::-1] + offset_xyz)]
    result[label] = (to_xyz([z, *nearest]), to_xyz(start), to_xyz(end))
  return result


def _rank_offenders(table: sparse.csr_array, row_ids: np.ndarray, col_ids: np.ndarray,
                    valid_rows: np.ndarray, valid_cols: np.ndarray, row_sizes: np.ndarray,
                    min_overlap: int, num: int
                    ) -> list[tuple[int, int, int, list[tuple[int, int]]]]:
  """The `num` valid rows of `table` overlapping the most valid columns by >= min_overlap voxels.

  Returns (row label, row size, count, partners) per row, worst first.
  """
  table = sparse.csr_array(table)
  counted = sparse.csr_array(table.multiply(valid_cols[np.newaxis, :].astype(np.float64)))
  counts = np.ravel((counted >= max(min_overlap, 1)).sum(axis=1)).astype(np.int64)
  counts[~valid_rows] = 0
  # The largest overlap is the part that is not an error: rank by count, then by the rest.
  largest = np.ravel(counted.max(axis=1).toarray()).astype(np.int64)
  order = np.lexsort((-(row_sizes - largest), -counts))
  ranked = []
  for row in order[:num]:
    if counts[row] < 2:
      break
    start, end = counted.indptr[row], counted.indptr[row + 1]
    cols, vals = counted.indices[start:end], counted.data[start:end].astype(np.int64)
    keep = vals > 0
    cols, vals = cols[keep], vals[keep]
    best = np.argsort(-vals, kind='stable')[:10]
    partners = [(int(col_ids[cols[i]]), int(vals[i])) for i in best]
    ranked.append((int(row_ids[row]), int(row_sizes[row]), int(counts[row]), partners))
  return ranked


def _checked_ignore_labels(ignore_labels: Sequence[int]) -> list[int]:
  """The distinct non-zero `ignore_labels`, sorted; an error for one outside 0..2^64-1."""
  for label in ignore_labels:
    if not 0 <= int(label) < 1 << 64:
      raise EvaluationError(f'ignore_labels must be groundtruth labels from 0 to 2^64-1, '
                            f'got {label}')
  return sorted({int(v) for v in ignore_labels} - {0})  # 0 is never scored anyway.


def evaluate_arrays(segmentation: np.ndarray, groundtruth: np.ndarray, *,
                    seg_zero: str = 'singletons',
                    ignore_labels: Sequence[int] = (),
                    border: Optional[BorderExclusion] = None,
                    offset_xyz: Sequence[int] = (0, 0, 0),
                    num_offenders: int = 10, min_overlap: int = 100) -> EvaluationResult:
  """Scores zyx `segmentation` against zyx `groundtruth` (same shape) as the module doc says.

  `offset_xyz` is the global position of voxel (0, 0, 0), used for reported
  positions. Groundtruth voxels labelled 0 or in `ignore_labels` are not
  scored. Offenders count partners overlapping by at least `min_overlap`
  scored voxels.
  """
  if seg_zero not in SEG_ZERO_MODES:
    raise EvaluationError(f'seg_zero must be one of {SEG_ZERO_MODES}, got {seg_zero!r}')
  if segmentation.ndim != 3 or groundtruth.ndim != 3:
    raise EvaluationError(f'expected 3-D (zyx) volumes, got segmentation {segmentation.shape} '
                          f'and groundtruth {groundtruth.shape}')
  if segmentation.shape != groundtruth.shape:
    raise EvaluationError(f'segmentation shape {segmentation.shape} (zyx) does not match '
                          f'groundtruth shape {groundtruth.shape} (zyx)')
  for name, volume in (('segmentation', segmentation), ('groundtruth', groundtruth)):
    if not np.issubdtype(volume.dtype, np.integer):
      raise EvaluationError(f'{name} must hold integer labels, got dtype {volume.dtype}')
    if np.issubdtype(volume.dtype, np.signedinteger) and volume.size and volume.min() < 0:
      raise EvaluationError(f'{name} has negative labels (min {volume.min()})')
  offset_xyz = np.asarray(offset_xyz, dtype=np.int64)
  ignore_labels = _checked_ignore_labels(ignore_labels)

  scored = groundtruth != 0
  ignored_label_voxels = {}
  for label in ignore_labels:
    if label <= np.iinfo(groundtruth.dtype).max:
      is_label = groundtruth == groundtruth.dtype.type(label)
    else:  # A label the groundtruth's dtype cannot hold labels nothing.
      is_label = np.zeros(groundtruth.shape, dtype=bool)
    ignored_label_voxels[label] = int(np.count_nonzero(is_label))
    scored &= ~is_label
  excluded_border = 0
  if border is not None and border.distance > 0:
    near_border = groundtruth_border_mask(groundtruth, border)
    excluded_border = int(np.count_nonzero(near_border & scored))
    scored &= ~near_border
  num_scored = int(np.count_nonzero(scored))
  if num_scored == 0:
    raise EvaluationError('no voxels left to score: the groundtruth is all 0 in the compared '
                          'region (or all of it is excluded as border or an ignored label)')

  gt_ids, gt_index = _compact(groundtruth[scored])
  seg_ids, seg_index = _compact(segmentation[scored])
  zero_voxels = (seg_index == 0) if seg_ids[0] == 0 else np.zeros(seg_index.shape, bool)
  unsegmented = int(np.count_nonzero(zero_voxels))
  body_sizes = np.bincount(gt_index, minlength=len(gt_ids))
  body_unsegmented = np.bincount(gt_index[zero_voxels], minlength=len(gt_ids))
  segment_sizes = np.bincount(seg_index, minlength=len(seg_ids))
  valid_cols = seg_ids != 0
  if seg_zero == 'singletons' and unsegmented:
    # Each unsegmented voxel gets a column of its own past the real segments.
    seg_index = seg_index.copy()
    seg_index[zero_voxels] = len(seg_ids) + np.arange(unsegmented)

  table = metrics.contingency_table(gt_index, seg_index, sparse_type='array')
  vi_split, vi_merge = metrics.variation_of_information(
      gt_index, seg_index, table=table / num_scored)  # The arrays only pass its shape check.
  if seg_zero == 'cremi':
    are, precision, recall = _cremi_adapted_rand(table, 0 if seg_ids[0] == 0 else None,
                                                 groundtruth.size)
  else:
    are, precision, recall = metrics.adapted_rand_error(table=table)
    if _skimage_swaps_precision_recall():  # See the module docstring.
      precision, recall = recall, precision

  # Offenders use the real segments only (singleton columns are dropped).
  real = sparse.csr_array(table[:, :len(seg_ids)])
  every_body = np.ones(len(gt_ids), dtype=bool)
  mergers = _rank_offenders(sparse.csr_array(real.T), seg_ids, gt_ids, valid_cols, every_body,
                            segment_sizes, min_overlap, num_offenders)
  splits = _rank_offenders(real, gt_ids, seg_ids, every_body, valid_cols, body_sizes,
                           min_overlap, num_offenders)
  seg_positions = _object_positions(segmentation, [m[0] for m in mergers], offset_xyz)
  gt_positions = _object_positions(groundtruth, [s[0] for s in splits], offset_xyz)

  unsegmented_by_body = dict(zip(gt_ids.tolist(), body_unsegmented.tolist()))

  def offenders(ranked, positions, with_zero):
    out = []
    for label, size, count, partners in ranked:
      position, start, end = positions[label]
      out.append(Offender(label=label, size=size, count=count, partners=partners,
                          unsegmented=unsegmented_by_body[label] if with_zero else 0,
                          position_xyz=position, box_start_xyz=start, box_end_xyz=end))
    return out

  size_xyz = [int(s) for s in axes.zyx_to_xyz(groundtruth.shape)]
  return EvaluationResult(
      vi_split=float(vi_split), vi_merge=float(vi_merge),
      adapted_rand_error=float(are), rand_precision=float(precision),
      rand_recall=float(recall),
      scored_voxels=num_scored, total_voxels=int(groundtruth.size),
      ignored_label_voxels=ignored_label_voxels,
      excluded_border_voxels=excluded_border, unsegmented_voxels=unsegmented,
      num_groundtruth_bodies=int(len(gt_ids)), num_segments=int(np.count_nonzero(valid_cols)),
      seg_zero=seg_zero, min_overlap=int(min_overlap),
      box={'start_xyz': [int(v) for v in offset_xyz], 'size_xyz': size_xyz},
      mergers=offenders(mergers, seg_positions, False),
      splits=offenders(splits, gt_positions, True))


# ----------------------------------------------------------------------------
# Loading the two volumes over a common box.


# The evaluation name of a one-subvolume ResultSpec.
ResultSource = results.single_result


def _volume_box(shape_zyx: Sequence[int], offset_xyz: Sequence[int] = (0, 0, 0)
                ) -> bounding_box.BoundingBox:
  return bounding_box.BoundingBox(start=offset_xyz, size=axes.zyx_to_xyz(shape_zyx[:3]))


def load_segmentation_box(source, box: Optional[bounding_box.BoundingBox]
                          ) -> tuple[np.ndarray, bounding_box.BoundingBox]:
  """Reads a segmentation (ResultSource or volume spec) as (zyx labels, its global box).

  With `box`, only that part is returned (an error if it is not inside).
  """
  if isinstance(source, results.ResultSpec):
    labels = source.load(source.corner_xyz)
    seg_box = _volume_box(labels.shape, source.corner_xyz)
    what = f'segmentation {source.directory} at corner {source.corner_xyz} (xyz)'
    if box is None:
      return labels, seg_box
    _check_inside(box, seg_box, what)
    # The box in the subvolume's own (local) coordinates.
    local = bounding_box.BoundingBox(start=box.start - seg_box.start, size=box.size)
    return labels[local.to_slice()], box

  with volumes.open_volume(source, ndims=(3,)) as volume:
    seg_box = _volume_box(volume.shape)
    if box is None:
      return volume[...], seg_box
    _check_inside(box, seg_box, f'segmentation {source}')
    return volume.read(box), box


def _check_inside(box: bounding_box.BoundingBox, outer: bounding_box.BoundingBox, what: str):
  if box.is_empty() or not outer.contains_box(box):
    raise EvaluationError(
        f'bounding box start={box.start.tolist()} size={box.size.tolist()} (xyz) is not inside '
        f'{what}, which covers start={outer.start.tolist()} size={outer.size.tolist()} (xyz)')


def evaluate(segmentation_source, groundtruth_spec: str,
             box: Optional[bounding_box.BoundingBox] = None,
             points_xyz: Optional[np.ndarray] = None,
             **options) -> tuple[EvaluationResult, np.ndarray, np.ndarray]:
  """Loads both volumes over `box` (global xyz; default: the segmentation's extent) and scores them.

  A volume-spec segmentation must have the groundtruth's shape; a result
  subvolume must lie inside the groundtruth. With `points_xyz` (global xyz),
  only the bodies under the points are scored (see `targets`). Returns
  (result, seg, gt) arrays; gt holds the target bodies alone with points, and
  0 for the `ignore_labels`.
  """
  with volumes.open_volume(groundtruth_spec, ndims=(3,)) as gt_volume:
    gt_box = _volume_box(gt_volume.shape)
    if not isinstance(segmentation_source, results.ResultSpec):
      with volumes.open_volume(segmentation_source) as seg_volume:
        seg_shape = seg_volume.shape
      if tuple(seg_shape) != tuple(gt_volume.shape):
        raise EvaluationError(
            f'segmentation {segmentation_source} has shape {tuple(seg_shape)} (zyx) but '
            f'groundtruth {groundtruth_spec} has {tuple(gt_volume.shape)} (zyx); they must match')
    if box is not None:
      _check_inside(box, gt_box, f'groundtruth {groundtruth_spec}')
    seg, seg_box = load_segmentation_box(segmentation_source, box)
    if not gt_box.contains_box(seg_box):
      raise EvaluationError(
          f'segmentation covers start={seg_box.start.tolist()} size={seg_box.size.tolist()} '
          f'(xyz), which does not fit in groundtruth {groundtruth_spec} of size '
          f'{gt_box.size.tolist()} (xyz)')
    gt = gt_volume.read(seg_box)

  scored_gt, targeted = gt, None
  ignored = _checked_ignore_labels(options.get('ignore_labels', ()))
  if ignored:
    # The skeleton metrics, the overview and the targets see ignored labels as unlabelled too.
    fits = [v for v in ignored if v <= np.iinfo(gt.dtype).max]
    gt = np.where(np.isin(gt, np.array(fits, dtype=gt.dtype)), gt.dtype.type(0), gt)
  if points_xyz is not None:
    chosen = targets.bodies_under(points_xyz, gt, seg_box.start)
    if not chosen.bodies:
      raise EvaluationError(f'none of the {chosen.points} points lies on a groundtruth body in '
                            f'the scored region ({chosen.outside} outside it, '
                            f'{chosen.on_background} on groundtruth 0)')
    targeted = chosen.to_json_dict() | {
        'objects': targets.objects_at(points_xyz, seg, gt, seg_box.start)}
    scored_gt, gt = targets.restrict(seg, gt, chosen.bodies)
  result = evaluate_arrays(seg, scored_gt, offset_xyz=seg_box.start, **options)
  if targeted is not None:
    result.inputs['points'] = targeted
  if isinstance(segmentation_source, results.ResultSpec):
    result.inputs['segmentation'] = dataclasses.asdict(segmentation_source)
  else:
    result.inputs['segmentation'] = str(segmentation_source)
  result.inputs['groundtruth'] = str(groundtruth_spec)
  return result, seg, gt


def _points_lines(points: Optional[dict]) -> list[str]:
  """The report's lines on a targeted evaluation (none without points)."""
  if points is None:
    return []
  lines = [f'targets: groundtruth bodies {points["bodies"]} under {points["points"]} points '
           f'({points["outside"]} outside the region, {points["on_background"]} on groundtruth '
           '0); scored: those bodies and the segments that overlap them',
           f'  {"point (xyz)":<18} {"body":>10} {"segment":>10} {"body voxels":>12} '
           f'{"recovered":>10} {"purity":>8}']
  for o in points.get('objects', []):
    lines.append(f'  {",".join(str(v) for v in o["point_xyz"]):<18} {o["body"]:>10} '
                 f'{o["segment"]:>10} {o["body_voxels"]:>12} {o["recovered"]:>10.1%} '
                 f'{o["purity"]:>8.1%}')
  return lines


def format_report(result: EvaluationResult) -> str:
  """A plain-text table of the scores and the worst offenders."""
  pct = lambda n: 100.0 * n / max(result.total_voxels, 1)
  lines = [
      f'region (xyz): start {result.box["start_xyz"]} size {result.box["size_xyz"]}',
      f'scored voxels: {result.scored_voxels} of {result.total_voxels} '
      f'({pct(result.scored_voxels):.1f}%; groundtruth 0 ignored, '
      f'{result.excluded_border_voxels} border voxels excluded)',
      *[f'groundtruth label {label} ignored: {n} voxels'
        for label, n in result.ignored_label_voxels.items()],
      f'segmentation 0: {result.unsegmented_voxels} scored voxels, counted as '
      f'{SEG_ZERO_WORDS[result.seg_zero]}',
      f'groundtruth bodies: {result.num_groundtruth_bodies}   segments: {result.num_segments}',
      *_points_lines(result.inputs.get('points')),
      '',
      f'{"metric":<24}{"value":>10}',
      f'{"VI split (bits)":<24}{result.vi_split:>10.4f}',
      f'{"VI merge (bits)":<24}{result.vi_merge:>10.4f}',
      f'{"VI total (bits)":<24}{result.vi_total:>10.4f}',
      f'{"adapted Rand error":<24}{result.adapted_rand_error:>10.4f}',
      f'{"Rand precision":<24}{result.rand_precision:>10.4f}',
      f'{"Rand recall":<24}{result.rand_recall:>10.4f}',
  ]

  def table(title, offenders, count_name, partner_name, show_unsegmented):
    lines.extend(['', f'{title} (partners overlapping >= {result.min_overlap} voxels)'])
    if not offenders:
      lines.append('  none')
      return
    extra = f' {"unseg.":>8}' if show_unsegmented else ''
    lines.append(f'  {"id":>12} {"voxels":>10} {count_name:>9}{extra}  {"at (xyz)":<18} '
                 f'largest {partner_name} (id:voxels)')
    for o in offenders:
      partners = ' '.join(f'{p}:{n}' for p, n in o.partners[:5])
      extra = f' {o.unsegmented:>8}' if show_unsegmented else ''
      lines.append(f'  {o.label:>12} {o.size:>10} {o.count:>9}{extra}  '
                   f'{",".join(str(v) for v in o.position_xyz):<18} {partners}')

  table('segments merging the most groundtruth bodies', result.mergers, 'bodies', 'bodies',
        False)
  table('groundtruth bodies split into the most segments', result.splits, 'segments',
        'segments', True)
  return '\n'.join(lines)
