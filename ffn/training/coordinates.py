"""Balanced training coordinates from partition volumes, written as a GZIP TFRecord.

Records are written by ffn.training.tfrecord. Like upstream, every partition
value except 255 is a class (0, background, included); each class is resampled
to the size of the largest one, and all records are shuffled.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Optional, Sequence

import numpy as np

from ffn.training import tfrecord
from ffn.utils import atomic
from ffn.utils import errors
from ffn.utils import volumes as volumes_lib

IGNORE_PARTITION = 255
CHUNK_RECORDS = 1 << 18


class CoordinatesError(errors.FFNError):
  """Arguments that cannot produce a coordinate file."""


# --------------------------------------------------------------------------- sampling


@dataclasses.dataclass
class PartitionVolume:
  """Voxel indices of one cropped partition volume, grouped by partition value."""
  name: str
  shape: tuple[int, int, int]          # cropped zyx shape
  values: np.ndarray                   # partition values present (255 excluded)
  counts: np.ndarray                   # voxels per value
  order: np.ndarray                    # flat indices, grouped by value in `values` order


def validate_margin(margin_zyx: Sequence[int]) -> tuple[int, int, int]:
  """Checks a z,y,x margin of non-negative ints."""
  try:
    margin = tuple(int(m) for m in margin_zyx)
  except (TypeError, ValueError) as e:
    raise CoordinatesError(f'margin must be 3 integers z,y,x, got {margin_zyx!r}') from e
  if len(margin) != 3 or min(margin) < 0:
    raise CoordinatesError(f'margin must be 3 non-negative integers z,y,x, got {list(margin_zyx)}')
  return margin


def load_partition_volume(spec, margin_zyx: Sequence[int],
                          name: Optional[str] = None) -> PartitionVolume:
  """Reads a partition volume without its margin and groups voxel indices by value."""
  with volumes_lib.open_volume(spec, ndims=(3,)) as volume:
    shape = np.array(volume.shape)
    margin = np.array(margin_zyx)
    if np.any(2 * margin >= shape):
      raise CoordinatesError(
          f'margin {list(margin_zyx)} (z,y,x) leaves nothing of partition volume '
          f'{str(spec)!r} of shape {tuple(shape)} (z,y,x)')
    mz, my, mx = (int(m) for m in margin)
    data = volume[mz:shape[0] - mz, my:shape[1] - my, mx:shape[2] - mx]
  if not np.issubdtype(data.dtype, np.integer):
    raise CoordinatesError(f'partition volume {str(spec)!r} must hold integers, got {data.dtype}')
  flat = data.ravel()
  if data.dtype == np.uint8:
    counts = np.bincount(flat, minlength=256)
    values = np.flatnonzero(counts)
    counts = counts[values]
  else:
    values, counts = np.unique(flat, return_counts=True)
  # A stable sort keeps flat indices ascending within each value (radix sort for uint8).
  order = np.argsort(flat, kind='stable')
  keep = values != IGNORE_PARTITION
  if not keep.all():
    # 255 sorts last among uint8 values; drop its run from the index list.
    ignored = int(counts[~keep].sum())
    position = int(counts[values < IGNORE_PARTITION].sum())
    order = np.delete(order, np.s_[position:position + ignored])
  name = name or getattr(spec, 'name', None) or getattr(spec, 'path', None) or str(spec)
  return PartitionVolume(name, tuple(int(s) for s in data.shape),
                         values[keep].astype(np.int64), counts[keep].astype(np.int64), order)


def balanced_sample(volumes: Sequence[PartitionVolume],
                    rng: np.random.Generator) -> tuple[np.ndarray, dict[int, int]]:
  """Global voxel ids (volume offset + flat index), every class resampled to the largest, shuffled.

  Returns (ids, {value: total voxels}).
  """
  offsets = np.cumsum([0] + [int(np.prod(v.shape)) for v in volumes])
  totals: dict[int, int] = {}
  for vol in volumes:
    for value, count in zip(vol.values.tolist(), vol.counts.tolist()):
      totals[value] = totals.get(value, 0) + count
  if not totals:
    raise CoordinatesError('the partition volumes hold no partition to sample (all voxels are '
                           f'{IGNORE_PARTITION} or cropped away by the margin)')
  max_count = max(totals.values())
  sampled = np.empty(len(totals) * max_count, dtype=np.int64)
  for k, value in enumerate(sorted(totals)):
    members = []
    for offset, vol in zip(offsets, volumes):
      where = np.flatnonzero(vol.values == value)
      if where.size:
        begin = int(vol.counts[:where[0]].sum())
        members.append(vol.order[begin:begin + int(vol.counts[where[0]])] + offset)
    ids = rng.permutation(np.concatenate(members))
    sampled[k * max_count:(k + 1) * max_count] = np.resize(ids, max_count)
  rng.shuffle(sampled)
  return sampled, totals


def ids_to_centers(ids: np.ndarray, volumes: Sequence[PartitionVolume],
                   margin_zyx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
  """(n, 3) global xyz centers and (n,) volume indices for global voxel ids."""
  sizes = np.array([int(np.prod(v.shape)) for v in volumes], dtype=np.int64)
  offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
  vol = np.searchsorted(offsets, ids, side='right') - 1
  flat = ids - offsets[vol]
  shapes = np.array([v.shape for v in volumes], dtype=np.int64)
  sy, sx = shapes[vol, 1], shapes[vol, 2]
  mz, my, mx = margin_zyx
  centers = np.empty((ids.size, 3), dtype=np.int64)
  centers[:, 0] = flat % sx + mx
  centers[:, 1] = (flat // sx) % sy + my
  centers[:, 2] = flat // (sx * sy) + mz
  return centers, vol


def build_coordinates(partition_volumes: Sequence[str], coordinate_output: str,
                      margin_zyx: Sequence[int], seed: Optional[int] = None,
                      compression_level: int = 1,
                      chunk_records: int = CHUNK_RECORDS) -> dict[int, int]:
  """Samples balanced coordinates from `name:path:dataset` volumes into a GZIP TFRecord.

  Returns {partition value: voxel count}. `seed` fixes the shuffle (upstream is unseeded).
  """
  start_time = time.monotonic()
  margin = validate_margin(margin_zyx)
  atomic.check_output(coordinate_output, '--coordinate_output')
  if not partition_volumes:
    raise CoordinatesError('no partition volumes given; expected name:path:dataset[,...]')
  specs = volumes_lib.parse_named_volume_specs(list(partition_volumes))
  volumes = [load_partition_volume(spec, margin, name) for name, spec in specs.items()]
  for vol in volumes:
    logging.info('Partition counts in %s %s: %s', vol.name, vol.shape,
                 ', '.join(f'{v}: {c}' for v, c in zip(vol.values, vol.counts)))
  rng = np.random.default_rng(seed)
  ids, totals = balanced_sample(volumes, rng)
  logging.info('Partition counts:')
  for value in sorted(totals):
    logging.info(' %d: %d', value, totals[value])
  total = ids.size
  logging.info('Writing %d records (%d partitions x %d) to %s', total, len(totals),
               max(totals.values()), coordinate_output)
  encoder = tfrecord.ExampleEncoder([vol.name.encode('utf-8') for vol in volumes])

  def chunks():
    last_log = time.monotonic()
    write_start = last_log
    for begin in range(0, total, chunk_records):
      centers, vol = ids_to_centers(ids[begin:begin + chunk_records], volumes, margin)
      yield encoder.encode_array(centers, vol)
      now = time.monotonic()
      done = min(begin + chunk_records, total)
      if now - last_log >= 5 or done == total:
        logging.info('Encoded %d/%d records (%.1f%%, %.0f records/s)', done, total,
                     100.0 * done / total, done / max(now - write_start, 1e-9))
        last_log = now

  size = tfrecord.write_tfrecord_gzip(coordinate_output, chunks(), compression_level)
  elapsed = time.monotonic() - start_time
  logging.info('Wrote %d records (%.1f MiB) to %s in %.1fs (%.0f records/s)', total,
               size / 2**20, coordinate_output, elapsed, total / max(elapsed, 1e-9))
  return totals
