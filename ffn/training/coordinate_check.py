"""Reads coordinate TFRecords through once before training, so bad files fail at the start.

An empty file would make the repeating input pipeline spin forever, a
truncated one would fail only when the reader reaches the cut (hours in), and a
coordinate naming an unknown volume or lying too close to the border would fail
deep inside tf.data; all three are found here, with the file and record named.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from ffn.utils import errors

_BATCH = 1 << 16
_FEATURES = {
    'center': tf.io.FixedLenFeature([1, 3], tf.int64),
    'label_volume_name': tf.io.FixedLenFeature([1], tf.string),
}


class CoordinateFileError(errors.FFNError):
  """A coordinate file is empty, unreadable, truncated or names unusable coordinates."""


def _first_line(error: tf.errors.OpError) -> str:
  """The reason in a TensorFlow error, without its op and device decorations."""
  text = (error.message or type(error).__name__).strip().splitlines()[0]
  text = re.sub(r'\{\{function_node [^}]*\}\}\s*', '', text)
  return re.sub(r'\s*\[Op:[^\]]*\].*$', '', text) or type(error).__name__


def _check_bounds(path: str, first_record: int, centers: np.ndarray, name: str,
                  shape_zyx: Sequence[int], sizes_xyz: Sequence[Sequence[int]]) -> None:
  """Raises unless every patch of every size around `centers` (xyz) lies in the volume."""
  shape_xyz = np.asarray(shape_zyx[-3:])[::-1]
  for size in sizes_xyz:
    size = np.asarray(size, np.int64)
    start = centers - (size - 1) // 2
    end = start + size
    bad = np.flatnonzero(np.any(start < 0, axis=1) | np.any(end > shape_xyz, axis=1))
    if bad.size:
      i = int(bad[0])
      raise CoordinateFileError(
          f'{path}: record {first_record + i} has centre {centers[i].tolist()} (xyz) in volume '
          f'{name!r}, but a patch of {size.tolist()} (xyz) around it leaves the volume of '
          f'size {shape_xyz.tolist()} (xyz) ({bad.size} such records in this batch); '
          'build coordinates with a larger --margin')


def check_coordinate_files(paths: Sequence[str], volume_shapes: Mapping[str, Sequence[int]],
                           sizes_xyz: Sequence[Sequence[int]]) -> int:
  """Reads every record once; returns the count. Raises CoordinateFileError on any bad file.

  `volume_shapes` maps label volume names to their (z, y, x) shapes; every
  coordinate must name one of them and leave room for patches of `sizes_xyz`.
  """
  total = 0
  start_time = time.monotonic()
  for path in paths:
    count = 0
    records = tf.data.TFRecordDataset(path, compression_type='GZIP').batch(_BATCH)
    try:
      for batch in records:
        try:
          parsed = tf.io.parse_example(batch, _FEATURES)
        except tf.errors.InvalidArgumentError as e:
          raise CoordinateFileError(
              f'{path}: records {count}..{count + int(batch.shape[0]) - 1} are not FFN '
              f'coordinates (center [1, 3] int64, label_volume_name): {_first_line(e)}') from None
        centers = parsed['center'].numpy().reshape(-1, 3)
        names = parsed['label_volume_name'].numpy().reshape(-1)
        for name in np.unique(names):
          text = name.decode('utf-8', 'replace')
          rows = names == name
          if text not in volume_shapes:
            first = count + int(np.flatnonzero(rows)[0])
            raise CoordinateFileError(
                f'{path}: record {first} names volume {text!r}, which is not among the label '
                f'volumes {sorted(volume_shapes)} (--label_volumes)')
          _check_bounds(path, count, centers[rows], text, volume_shapes[text], sizes_xyz)
        count += centers.shape[0]
    except tf.errors.OpError as e:
      raise CoordinateFileError(
          f'{path} is unreadable or truncated after {count} records (expected a GZIP '
          f'TFRecord file of coordinates): {_first_line(e)}') from None
    if count == 0:
      raise CoordinateFileError(f'{path} holds no coordinates (an empty coordinate file); '
                                'rebuild it with build_coordinates.py')
    total += count
  logging.info('Checked %d coordinates in %d file(s) in %.1f s', total, len(paths),
               time.monotonic() - start_time)
  return total
