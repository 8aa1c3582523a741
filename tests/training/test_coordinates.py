"""Tests for ffn.training.coordinates and ffn.training.tfrecord: byte-exact Examples, TFRecord framing, balanced sampling."""

from __future__ import annotations

import collections
import gzip
import os
import zlib

import h5py
import numpy as np
import pytest
import tensorflow as tf

from ffn.training import coordinates
from ffn.training import tfrecord
from ffn.utils import volume_spec


def _tf_example(center, name: bytes) -> tf.train.Example:
  return tf.train.Example(features=tf.train.Features(feature=dict(
      center=tf.train.Feature(int64_list=tf.train.Int64List(value=list(center))),
      label_volume_name=tf.train.Feature(bytes_list=tf.train.BytesList(value=[name])))))


def _read_back(path):
  """(centers (n, 3), names) parsed the way training parses the coordinate file."""
  features = {'center': tf.io.FixedLenFeature([1, 3], tf.int64),
              'label_volume_name': tf.io.FixedLenFeature([1], tf.string)}
  dataset = tf.data.TFRecordDataset([str(path)], compression_type='GZIP')
  dataset = dataset.batch(4096).map(lambda r: tf.io.parse_example(r, features))
  centers, names = [], []
  for batch in dataset:
    centers.append(batch['center'].numpy().reshape(-1, 3))
    names.extend(batch['label_volume_name'].numpy().ravel().tolist())
  return np.concatenate(centers) if centers else np.zeros((0, 3), np.int64), names


def test_encoder_matches_tf_serialisation_and_framing(tmp_path):
  rng = np.random.default_rng(0)
  n = 600
  centers = rng.integers(0, 300, size=(n, 3))
  centers[100:200] = rng.integers(0, 2**40, size=(100, 3))
  centers[0] = [-1, 0, 2**63 - 1]
  centers[1] = [127, 128, 16383]
  names = [b'validation1', b'x' * 200, b'', 'vol\u00e9'.encode('utf-8')]
  index = rng.integers(0, len(names), n)
  ours = tfrecord.encode_tfrecords(centers, index, names)
  path = tmp_path / 'ref.tfr'
  with tf.io.TFRecordWriter(str(path)) as writer:
    for center, i in zip(centers.tolist(), index.tolist()):
      writer.write(_tf_example(center, names[i]).SerializeToString(deterministic=True))
  assert ours == path.read_bytes()


def test_encoder_records_parse_to_the_same_examples():
  centers = np.array([[5, 6, 7], [300, 2, 70000]])
  data = tfrecord.encode_tfrecords(centers, np.array([0, 1]), [b'a', b'bb'])
  records, pos = [], 0
  while pos < len(data):
    length = int.from_bytes(data[pos:pos + 8], 'little')
    records.append(data[pos + 12:pos + 12 + length])
    pos += 12 + length + 4
  assert [tf.train.Example.FromString(r) for r in records] == [
      _tf_example([5, 6, 7], b'a'), _tf_example([300, 2, 70000], b'bb')]


def test_serialize_example_reference():
  example = _tf_example([1, 200, 3], b'v')
  assert tfrecord.serialize_example([1, 200, 3], b'v') == example.SerializeToString(
      deterministic=True)


def test_crc_helpers():
  # The masked CRC-32C of b'' and a known TFRecord length field.
  framed = tfrecord.frame_tfrecord(b'hello')
  assert framed[8:12] == tfrecord.masked_crc32c(framed[:8]).to_bytes(4, 'little')


@pytest.mark.parametrize('workers', [1, 2])
def test_gzip_writer_reads_back_with_tf_data(tmp_path, workers):
  rng = np.random.default_rng(1)
  n = 60_000  # About 2.6 MB of records: several of the writer's 1 MiB blocks.
  centers = rng.integers(0, 1000, size=(n, 3))
  index = rng.integers(0, 2, n)
  encoder = tfrecord.ExampleEncoder([b'one', b'two'])
  chunks = (encoder.encode_array(centers[i:i + 7000], index[i:i + 7000])
            for i in range(0, n, 7000))
  path = tmp_path / 'coords.tfr'
  size = tfrecord.write_tfrecord_gzip(str(path), chunks, workers=workers)
  assert size == path.stat().st_size
  got_centers, got_names = _read_back(path)
  np.testing.assert_array_equal(got_centers, centers)
  assert got_names == [[b'one', b'two'][i] for i in index]
  expected = encoder.encode(centers, index)
  assert len(expected) > 2 * 2**20
  with gzip.open(path, 'rb') as f:
    assert f.read() == expected
  # One gzip member, with its CRC-32 and length checked by zlib.
  inflate = zlib.decompressobj(wbits=31)
  assert inflate.decompress(path.read_bytes()) == expected
  assert inflate.eof and inflate.unused_data == b''
  assert [p for p in os.listdir(tmp_path)] == ['coords.tfr']


def _write_volume(path, data, dataset='af'):
  with h5py.File(path, 'w') as f:
    f.create_dataset(dataset, data=data)


def _partition_volumes(tmp_path):
  rng = np.random.default_rng(2)
  a = rng.choice(np.array([0, 1, 1, 2, 2, 2, 255], np.uint8), size=(7, 9, 11))
  b = rng.choice(np.array([1, 3, 255], np.uint8), size=(6, 8, 5))
  _write_volume(tmp_path / 'a.h5', a)
  _write_volume(tmp_path / 'b.h5', b)
  return a, b


def test_build_coordinates_balanced_and_in_bounds(tmp_path):
  a, b = _partition_volumes(tmp_path)
  margin = (1, 2, 1)  # z, y, x
  out = tmp_path / 'coords'
  totals = coordinates.build_coordinates(
      [f'va:{tmp_path}/a.h5:af', f'vb:{tmp_path}/b.h5:af'], str(out), margin, seed=3)
  mz, my, mx = margin
  crops = {b'va': a[mz:-mz, my:-my, mx:-mx], b'vb': b[mz:-mz, my:-my, mx:-mx]}
  expected_totals = collections.Counter()
  for crop in crops.values():
    expected_totals.update(v for v in crop.ravel().tolist() if v != 255)
  assert totals == dict(expected_totals)
  assert 0 in totals  # background is a class

  centers, names = _read_back(out)
  max_count = max(totals.values())
  assert len(centers) == len(totals) * max_count
  volumes = {b'va': a, b'vb': b}
  classes = collections.Counter()
  seen = collections.defaultdict(set)
  for (x, y, z), name in zip(centers.tolist(), names):
    full = volumes[name]
    assert mz <= z < full.shape[0] - mz and my <= y < full.shape[1] - my
    assert mx <= x < full.shape[2] - mx
    value = int(full[z, y, x])
    assert value != 255
    classes[value] += 1
    seen[value].add((name, x, y, z))
  assert set(classes.values()) == {max_count}
  for value, total in totals.items():
    assert len(seen[value]) == total  # every voxel of every class is used
  # Shuffled: not sorted by class.
  values = [int(volumes[n][z, y, x]) for (x, y, z), n in zip(centers.tolist(), names)]
  assert values != sorted(values)


def test_build_coordinates_seed_is_reproducible(tmp_path):
  _partition_volumes(tmp_path)
  specs = [f'va:{tmp_path}/a.h5:af']
  coordinates.build_coordinates(specs, str(tmp_path / 'one'), (1, 1, 1), seed=5)
  coordinates.build_coordinates(specs, str(tmp_path / 'two'), (1, 1, 1), seed=5)
  with gzip.open(tmp_path / 'one') as f1, gzip.open(tmp_path / 'two') as f2:
    assert f1.read() == f2.read()


def test_margin_zero_means_no_margin(tmp_path):
  a, _ = _partition_volumes(tmp_path)
  totals = coordinates.build_coordinates([f'va:{tmp_path}/a.h5:af'], str(tmp_path / 'o'),
                                         (0, 0, 0), seed=0)
  assert sum(totals.values()) == np.count_nonzero(a != 255)


@pytest.mark.parametrize('margin,match', [((4, 1, 1), 'margin'), ((1, 1), 'margin'),
                                          ((1, -1, 1), 'non-negative'), (('a', 1, 1), 'integers')])
def test_bad_margin_leaves_no_output(tmp_path, margin, match):
  _partition_volumes(tmp_path)
  out = tmp_path / 'coords'
  with pytest.raises(coordinates.CoordinatesError, match=match):
    coordinates.build_coordinates([f'va:{tmp_path}/a.h5:af'], str(out), margin)
  assert not out.exists()


def test_empty_partition_set(tmp_path):
  _write_volume(tmp_path / 'e.h5', np.full((5, 6, 7), 255, np.uint8))
  out = tmp_path / 'coords'
  with pytest.raises(coordinates.CoordinatesError, match='no partition'):
    coordinates.build_coordinates([f've:{tmp_path}/e.h5:af'], str(out), (1, 1, 1))
  assert not out.exists()


@pytest.mark.parametrize('spec,match', [
    ('va:{d}/missing.h5:af', 'does not exist'), ('va:{d}/a.h5:nope', "'nope' not found"),
    ('{d}/a.h5:af', 'no volume name')])
def test_bad_volume_specs(tmp_path, spec, match):
  _partition_volumes(tmp_path)
  out = tmp_path / 'coords'
  with pytest.raises(volume_spec.VolumeSpecError, match=match):
    coordinates.build_coordinates([spec.format(d=tmp_path)], str(out), (1, 1, 1))
  assert not out.exists()
