"""Partition maps for training-data sampling: each voxel's local object-mask (LOM) fraction class.

For every voxel of an object, the fraction of voxels in the (2r+1)-box around it
(`lom_radius` r, xyz) that belong to the same object is quantised by ascending
`thresholds`: class i+1 for the first threshold the fraction is below, N+1 when
it reaches the last one. 0 marks background, dust and non-whitelisted objects,
255 excluded voxels. Values are voxel for voxel those of upstream's per-label
full-volume loop; this version visits each object only within its bounding box
grown by the radius, with exact integer box sums.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import time
from typing import Iterable, Optional, Sequence

import numpy as np
import scipy.ndimage

from ffn.utils import atomic
from ffn.utils import axes
from ffn.utils import bounding_box
from ffn.utils import checks
from ffn.utils import errors
from ffn.utils import labels
from ffn.utils import masks
from ffn.utils import volumes

EXCLUDED = 255
# Ids at or above this go through np.unique instead of a bincount lookup table.
_MAX_LOOKUP_ID = 50_000_000


class PartitionError(errors.FFNError):
  """Arguments that cannot produce a partition map."""


@dataclasses.dataclass(frozen=True)
class ExclusionRegion:
  """A sphere of global voxels (xyz centre, radius r) marked as excluded."""
  x: int
  y: int
  z: int
  r: int


def validate_thresholds(thresholds: Sequence[float]) -> list[float]:
  """Checks that thresholds are strictly ascending fractions in (0, 1]; returns them as floats."""
  values = [float(t) for t in thresholds]
  if not values:
    raise PartitionError('at least one threshold is needed, got none')
  if len(values) > EXCLUDED - 2:
    raise PartitionError(f'at most {EXCLUDED - 2} thresholds fit a uint8 map, got {len(values)}')
  for t in values:
    if not 0.0 < t <= 1.0:
      raise PartitionError(f'threshold {t!r} is out of range; thresholds are fractions in (0, 1]')
  for prev, t in zip(values, values[1:]):
    if t <= prev:
      raise PartitionError(
          f'thresholds must be strictly ascending, got {t!r} after {prev!r} in {values}')
  return values


def validate_lom_radius(lom_radius: Sequence[int], shape_zyx: Sequence[int]) -> np.ndarray:
  """Checks an xyz radius against a zyx volume shape; returns it as an int64 xyz vector."""
  radius = np.array([int(r) for r in lom_radius], dtype=np.int64)
  if radius.shape != (3,) or np.any(radius < 0):
    raise PartitionError(f'lom_radius must be 3 non-negative integers x,y,z, got {list(lom_radius)}')
  shape_xyz = np.array(axes.zyx_to_xyz(shape_zyx), dtype=np.int64)
  if np.any(2 * radius >= shape_xyz):
    raise PartitionError(
        f'lom_radius {radius.tolist()} (x,y,z) is too large for a volume of size '
        f'{shape_xyz.tolist()} (x,y,z): 2*radius must be smaller than the size on every axis')
  return radius


def parse_exclusion_regions(values: Optional[Iterable]) -> list[ExclusionRegion]:
  """Groups a flat list of ints (x,y,z,r, x,y,z,r, ...) into exclusion spheres."""
  if not values:
    return []
  flat = list(values)
  try:
    ints = [int(str(v).strip()) for v in flat]
  except ValueError as e:
    raise PartitionError(f'exclusion_regions must be integers x,y,z,r,...; got {flat}') from e
  if len(ints) % 4:
    raise PartitionError(
        f'exclusion_regions must come in groups of 4 (x,y,z,r); got {len(ints)} values: {flat}')
  regions = [ExclusionRegion(*ints[i:i + 4]) for i in range(0, len(ints), 4)]
  for region in regions:
    if region.r < 0:
      raise PartitionError(f'exclusion region {region} has a negative radius')
  return regions


def parse_id_whitelist(values: Optional[Iterable]) -> Optional[list[int]]:
  """Parses object ids (1 .. 2**64 - 1) given as strings or ints; None stays None (no whitelist)."""
  if values is None:
    return None
  try:
    ids = [int(str(v).strip()) for v in values]
  except ValueError as e:
    raise PartitionError(f'id_whitelist must be integer object ids, got '
                         f'{errors.cut(",".join(str(v) for v in values))}') from e
  try:
    return list(checks.check_numbers(ids, 'id_whitelist', checks.Range(1, 2**64 - 1,
                                                                         integer=True)))
  except errors.FFNError as e:
    raise PartitionError(str(e)) from None


def _dense_ids(seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Returns (int32 array of dense ids, ids) where dense id k > 0 stands for ids[k-1] and 0 for 0."""
  if seg.size and seg.min() >= 0 and int(seg.max()) < _MAX_LOOKUP_ID:
    present = np.flatnonzero(np.bincount(seg.ravel()))
    ids = present[present != 0]
    lookup = np.zeros(int(seg.max()) + 1, dtype=np.int32)
    lookup[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
    return lookup[seg], ids.astype(seg.dtype)
  unique, inverse = np.unique(seg, return_inverse=True)
  dense = inverse.reshape(seg.shape).astype(np.int32)
  if unique.size and unique[0] <= 0 <= unique[-1] and 0 in unique:
    zero = int(np.searchsorted(unique, 0))
    # Renumber so that 0 maps to 0 and the other ids to 1..K in order.
    order = np.concatenate([[zero], np.delete(np.arange(unique.size), zero)])
    rank = np.empty(unique.size, dtype=np.int32)
    rank[order] = np.arange(unique.size, dtype=np.int32)
    return rank[dense], np.delete(unique, zero)
  return dense + 1, unique


def _class_lookup(thresholds: Sequence[float], box_volume: int) -> np.ndarray:
  """Partition value for every possible box count 0..box_volume (same float maths as upstream)."""
  fractions = np.arange(box_volume + 1, dtype=np.int64) / box_volume
  classes = np.searchsorted(np.asarray(thresholds, np.float64), fractions, side='right') + 1
  return classes.astype(np.uint8)


def summed_volume_table(values: np.ndarray) -> np.ndarray:
  """Zero-padded 3-D running sum (int32, exact modulo 2**32) of a zyx array."""
  table = np.zeros(tuple(s + 1 for s in values.shape), dtype=np.int32)
  table[1:, 1:, 1:] = values
  # Adding slice by slice is several times faster than np.cumsum along the
  # outer axes (whole contiguous planes/rows per step instead of strided runs).
  for z in range(2, table.shape[0]):
    table[z] += table[z - 1]
  for y in range(2, table.shape[1]):
    table[:, y] += table[:, y - 1]
  np.cumsum(table, axis=2, out=table)
  return table


def box_sums_valid(table: np.ndarray, diam_zyx: Sequence[int]) -> np.ndarray:
  """Sums over every full `diam_zyx` box of the array a summed volume table was built from."""
  dz, dy, dx = diam_zyx
  t = table
  return (t[dz:, dy:, dx:] - t[dz:, dy:, :-dx] - t[dz:, :-dy, dx:] - t[:-dz, dy:, dx:]
          + t[:-dz, :-dy, dx:] + t[:-dz, dy:, :-dx] + t[dz:, :-dy, :-dx] - t[:-dz, :-dy, :-dx])


def _box_sums_at(table: np.ndarray, lower_zyx: tuple[np.ndarray, ...],
                 diam_zyx: Sequence[int]) -> np.ndarray:
  """Box sums for boxes whose lower corners (in table coordinates) are `lower_zyx`."""
  _, sy, sx = table.shape
  flat = table.ravel()
  base = (lower_zyx[0].astype(np.int64) * sy + lower_zyx[1]) * sx + lower_zyx[2]
  oz, oy, ox = diam_zyx[0] * sy * sx, diam_zyx[1] * sx, diam_zyx[2]
  total = flat[base + oz + oy + ox]
  total -= flat[base + oy + ox]
  total -= flat[base + oz + ox]
  total -= flat[base + oz + oy]
  total += flat[base + ox]
  total += flat[base + oy]
  total += flat[base + oz]
  total -= flat[base]
  return total


def _mark_exclusions(output: np.ndarray, corner_xyz: np.ndarray,
                     regions: Sequence[ExclusionRegion]) -> None:
  """Sets output voxels (global = local + corner) inside any sphere to EXCLUDED."""
  corner_zyx = corner_xyz[::-1]
  for region in regions:
    centre = np.array([region.z, region.y, region.x]) - corner_zyx
    lo = np.maximum(centre - region.r, 0)
    hi = np.minimum(centre + region.r + 1, output.shape)
    if np.any(hi <= lo):
      continue
    zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    inside = ((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2
              <= region.r ** 2)
    output[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][inside] = EXCLUDED


def lom_mask_exclusion(mask: np.ndarray, lom_radius_xyz: Sequence[int]) -> np.ndarray:
  """For each valid voxel, whether its LOM box holds any True voxel of the full-volume `mask`."""
  diam_zyx = [2 * int(r) + 1 for r in axes.xyz_to_zyx(lom_radius_xyz)]
  return box_sums_valid(summed_volume_table(mask.astype(bool)), diam_zyx) >= 1


def compute_partitions(seg_array: np.ndarray, thresholds: Sequence[float],
                       lom_radius: Sequence[int], id_whitelist: Optional[Iterable[int]] = None,
                       exclusion_regions: Sequence[ExclusionRegion] = (),
                       mask: Optional[np.ndarray] = None, min_size: int = 10000,
                       log_every_sec: float = 10.0,
                       workers: int = 2) -> tuple[np.ndarray, np.ndarray]:
  """Returns (corner xyz, uint8 partition map of the valid region) for a zyx label volume.

  `seg_array` is modified in place (dust removal). `mask` is a boolean array of
  the whole volume whose set voxels exclude every voxel whose LOM box touches
  them. The valid region is the volume shrunk by `lom_radius` on every side.
  Objects are processed by `workers` threads (numpy releases the GIL).
  """
  if seg_array.ndim != 3:
    raise PartitionError(f'the label volume must be 3-D (z,y,x), got shape {seg_array.shape}')
  if not np.issubdtype(seg_array.dtype, np.integer):
    raise PartitionError(f'the label volume must hold integer ids, got dtype {seg_array.dtype}')
  thresholds = validate_thresholds(thresholds)
  radius_xyz = validate_lom_radius(lom_radius, seg_array.shape)
  radius_zyx = radius_xyz[::-1]
  diam_zyx = 2 * radius_zyx + 1
  shape = np.array(seg_array.shape)
  valid_shape = shape - 2 * radius_zyx

  labels.clear_dust(seg_array, min_size=min_size)
  dense, ids = _dense_ids(seg_array)
  selected = np.ones(ids.size, dtype=bool)
  if id_whitelist is not None:
    # Compared as Python ints: ids span int64 or uint64, the whitelist up to 2**64 - 1.
    whitelist = sorted(set(int(i) for i in id_whitelist))
    present = set(int(i) for i in ids)
    wanted = set(whitelist)
    selected = np.array([int(i) in wanted for i in ids], dtype=bool)
    missing = np.array([i for i in whitelist if i not in present], dtype=object)
    if missing.size:
      logging.warning('%d whitelisted ids are absent (or dust) in the volume: %s',
                      missing.size, missing[:20].tolist())
  logging.info('Labels to process: %d of %d', int(selected.sum()), ids.size)
  if not selected.any():
    raise PartitionError(
        f'no object to partition: every object is smaller than min_size={min_size}'
        + ('' if id_whitelist is None else ' or missing from id_whitelist'))

  output = np.zeros(tuple(valid_shape), dtype=np.uint8)
  lookup = _class_lookup(thresholds, int(np.prod(diam_zyx)))
  objects = scipy.ndimage.find_objects(dense)

  def process(index: int) -> None:
    """Writes the classes of one object's valid voxels into `output`."""
    box = objects[index]
    if box is None:
      return
    label = index + 1
    start = np.array([s.start for s in box])
    stop = np.array([s.stop for s in box])
    # Only this object's voxels inside the valid region get a value.
    inner_lo = np.maximum(start, radius_zyx)
    inner_hi = np.minimum(stop, shape - radius_zyx)
    if np.any(inner_hi <= inner_lo):
      return
    # Their boxes lie inside the object's box grown by the radius (and inside the volume).
    crop_lo = inner_lo - radius_zyx
    crop_hi = inner_hi + radius_zyx
    crop = dense[crop_lo[0]:crop_hi[0], crop_lo[1]:crop_hi[1], crop_lo[2]:crop_hi[2]] == label
    table = summed_volume_table(crop)
    inner = crop[radius_zyx[0]:crop.shape[0] - radius_zyx[0],
                 radius_zyx[1]:crop.shape[1] - radius_zyx[1],
                 radius_zyx[2]:crop.shape[2] - radius_zyx[2]]
    local = np.nonzero(inner)
    # In table coordinates the box of inner voxel p starts at p (the padding absorbs the -1).
    counts = _box_sums_at(table, local, diam_zyx)
    offset = inner_lo - radius_zyx
    # Objects own disjoint voxels, so threads never write the same element.
    output[local[0] + offset[0], local[1] + offset[1], local[2] + offset[2]] = lookup[counts]

  # Largest objects first, so that the threads finish together.
  todo = [int(i) for i in np.flatnonzero(selected) if objects[i] is not None]
  todo.sort(key=lambda i: -np.prod([s.stop - s.start for s in objects[i]]))
  start_time = last_log = time.monotonic()
  with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
    for done, _ in enumerate(pool.map(process, todo), start=1):
      now = time.monotonic()
      if now - last_log >= log_every_sec:
        logging.info('Processed %d/%d labels (%.1f labels/s)', done, len(todo),
                     done / (now - start_time))
        last_log = now

  corner = radius_xyz.copy()
  if exclusion_regions:
    _mark_exclusions(output, corner, exclusion_regions)
  if mask is not None:
    if tuple(mask.shape) != tuple(seg_array.shape):
      raise PartitionError(f'mask shape {mask.shape} differs from the volume shape {seg_array.shape}')
    output[lom_mask_exclusion(mask, radius_xyz)] = EXCLUDED
  logging.info('Nonzero values: %d', int(np.count_nonzero(output)))
  return corner, output


def adjust_bboxes(boxes: Iterable[bounding_box.BoundingBox],
                  lom_radius: Sequence[int]) -> list[bounding_box.BoundingBox]:
  """Shrinks boxes by the radius on both ends, dropping those left empty."""
  radius = np.asarray(lom_radius, dtype=np.int64)
  result = []
  for box in boxes:
    shrunk = box.adjusted_by(start=radius, end=-radius)
    if np.all(shrunk.size > 0):
      result.append(shrunk)
  return result


def read_bounding_boxes(dataset) -> list[bounding_box.BoundingBox]:
  """Boxes from every `bounding_boxes*` attribute of a volume ((start, size) xyz pairs)."""
  boxes = []
  for name, value in dataset.attrs.items():
    if name.startswith('bounding_boxes'):
      for start, size in np.asarray(value).reshape(-1, 2, 3):
        boxes.append(bounding_box.BoundingBox(start=start, size=size))
  if not boxes:
    boxes.append(bounding_box.BoundingBox.from_zyx((0, 0, 0), dataset.shape))
  return boxes


def check_output_file(output_spec) -> None:
  """Checks, before any work, that the output can be written (an HDF5 file or a new path)."""
  if not isinstance(output_spec, volumes.VolumeSpec):
    return  # TensorStore outputs are new directories, written under a temporary name.
  import h5py  # pylint: disable=g-import-not-at-top
  path = atomic.check_output(output_spec.path, '--output_volume')
  if os.path.exists(path) and not h5py.is_hdf5(path):
    raise PartitionError(f'--output_volume file {output_spec.path} exists and is not an HDF5 '
                         'file; refusing to replace it')


def write_partition_volume(output_spec, shape_zyx: Sequence[int],
                           corner_xyz: Sequence[int], partitions: np.ndarray,
                           boxes: Sequence[bounding_box.BoundingBox]) -> None:
  """Writes the map into a new volume (255 outside the valid region), atomically."""
  with volumes.create_volume(output_spec, shape_zyx, np.uint8, fill_value=EXCLUDED) as out:
    out.write(bounding_box.BoundingBox(start=corner_xyz, size=axes.zyx_to_xyz(partitions.shape)), partitions)
    out.attrs['bounding_boxes'] = np.array(
        [(b.start, b.size) for b in boxes], dtype=np.int64).reshape(-1, 2, 3)
    out.attrs['partition_counts'] = np.array(np.unique(partitions, return_counts=True))


def run(input_volume: str, output_volume: str, thresholds: Sequence[float],
        lom_radius: Sequence[int], id_whitelist: Optional[Iterable[int]] = None,
        exclusion_regions: Sequence[ExclusionRegion] = (), mask_configs=None,
        min_size: int = 10000) -> np.ndarray:
  """Reads a label volume, computes its partition map and writes it; returns the counts (2xK).

  `mask_configs` is a MaskConfigs proto (or None).
  """
  input_spec = volumes.parse_spec(input_volume)
  output_spec = volumes.parse_spec(output_volume)
  volumes.check_output_not_input(output_spec, [input_spec], '--output_volume')
  thresholds = validate_thresholds(thresholds)
  check_output_file(output_spec)
  start_time = time.monotonic()
  with volumes.open_volume(input_spec, ndims=(3,)) as volume:
    if np.dtype(volume.dtype).kind not in 'iu':
      raise PartitionError(f'--input_volume {input_volume} is {np.dtype(volume.dtype)}; '
                           'expected integer object ids')
    radius = validate_lom_radius(lom_radius, volume.shape)
    boxes = read_bounding_boxes(volume)
    shape = volume.shape
    seg = volume[...]
  logging.info('Read %s %s %s in %.1fs', input_volume, shape, seg.dtype,
               time.monotonic() - start_time)

  mask = None
  if mask_configs is not None and len(mask_configs.masks):
    mask = masks.build_mask(mask_configs.masks, (0, 0, 0), shape)
  corner, partitions = compute_partitions(
      seg, thresholds, radius, id_whitelist=id_whitelist, exclusion_regions=exclusion_regions,
      mask=mask, min_size=min_size)
  write_partition_volume(output_spec, shape, corner, partitions, adjust_bboxes(boxes, radius))
  counts = np.array(np.unique(partitions, return_counts=True))
  logging.info('Partition counts (value: voxels): %s',
               ', '.join(f'{v}: {c}' for v, c in counts.T))
  logging.info('Wrote %s in %.1fs', output_volume, time.monotonic() - start_time)
  return counts
