"""Small synthetic training data for the training tests: Voronoi blobs with dark borders."""

from __future__ import annotations

import pathlib

import h5py
import numpy as np
import tensorflow as tf


def blob_volume(shape_zyx=(36, 40, 44), num_objects=40, seed=0):
  """(uint8 image, int64 labels): Voronoi cells, borders dark, cells bright, some noise."""
  rng = np.random.default_rng(seed)
  points = rng.uniform(0, 1, size=(num_objects, 3)) * np.array(shape_zyx)
  grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape_zyx], indexing='ij'), -1)
  dist = ((grid[..., None, :] - points) ** 2).sum(-1)
  labels = (np.argmin(dist, axis=-1) + 1).astype(np.int64)
  border = np.zeros(shape_zyx, bool)
  for axis in range(3):
    diff = np.diff(labels, axis=axis) != 0
    lo = [slice(None)] * 3
    lo[axis] = slice(0, -1)
    border[tuple(lo)] |= diff
  labels[border] = 0
  image = np.where(border, 40.0, 200.0) + rng.normal(0, 15, shape_zyx)
  return np.clip(image, 0, 255).astype(np.uint8), labels


def write_volumes(directory: pathlib.Path, image, labels, name='blobs'):
  """Writes image.h5:raw and labels.h5:stack; returns (data_volumes, label_volumes) specs."""
  with h5py.File(directory / 'image.h5', 'w') as f:
    f.create_dataset('raw', data=image)
  with h5py.File(directory / 'labels.h5', 'w') as f:
    f.create_dataset('stack', data=labels)
  return (f'{name}:{directory / "image.h5"}:raw', f'{name}:{directory / "labels.h5"}:stack')


def write_coordinates(path: pathlib.Path, centers_xyz, name='blobs'):
  """Writes a GZIP TFRecord of (center xyz, label_volume_name) records, as build_coordinates."""
  with tf.io.TFRecordWriter(str(path), options='GZIP') as writer:
    for center in centers_xyz:
      example = tf.train.Example(features=tf.train.Features(feature={
          'center': tf.train.Feature(int64_list=tf.train.Int64List(value=list(center))),
          'label_volume_name': tf.train.Feature(
              bytes_list=tf.train.BytesList(value=[name.encode()])),
      }))
      writer.write(example.SerializeToString())


def object_centers(labels, margin_zyx, rng, count):
  """`count` random xyz coordinates on labelled voxels at least `margin_zyx` from the border."""
  inner = labels[tuple(slice(m, s - m) for m, s in zip(margin_zyx, labels.shape))]
  zyx = np.argwhere(inner > 0) + np.array(margin_zyx)
  picks = zyx[rng.choice(len(zyx), size=count, replace=False)]
  return [tuple(int(v) for v in p[::-1]) for p in picks]
