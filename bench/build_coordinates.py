#!/usr/bin/env python
"""Records/s of our coordinate writer against a one-at-a-time tf.train.Example writer.

Both write the same sample of README records (balanced, shuffled coordinates of
the bundled sample's partition map) as GZIP TFRecords in the same run; the bench
checks that the decompressed files are byte-identical and prints both rates and
their ratio. The partition map is computed into a temporary directory when
`--partition_volume` does not exist.

  python bench/build_coordinates.py [--records 200000] [--partition_volume af.h5:af]
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=wrong-import-position

from ffn.training import coordinates  # pylint: disable=wrong-import-position
from ffn.training import partitions  # pylint: disable=wrong-import-position
from ffn.training import tfrecord  # pylint: disable=wrong-import-position
from ffn.utils import volume_spec  # pylint: disable=wrong-import-position

SAMPLE = 'third_party/neuroproof_examples/training_sample2'
THRESHOLDS = [0.025, 0.05, 0.075, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def one_at_a_time(path: str, centers: list, name: bytes) -> None:
  """Upstream's writer: one Example built, serialised and written per record."""
  options = tf.io.TFRecordOptions(compression_type='GZIP')
  with tf.io.TFRecordWriter(path, options=options) as writer:
    for x, y, z in centers:
      example = tf.train.Example(features=tf.train.Features(feature=dict(
          center=tf.train.Feature(int64_list=tf.train.Int64List(value=[x, y, z])),
          label_volume_name=tf.train.Feature(bytes_list=tf.train.BytesList(value=[name])))))
      # deterministic=True orders the map keys; plain upb order varies between processes.
      writer.write(example.SerializeToString(deterministic=True))


def ours(path: str, centers: np.ndarray, name: bytes, chunk: int) -> None:
  """Our writer: vectorised encoding and framing, one gzip stream (ISA-L, threaded)."""
  encoder = tfrecord.ExampleEncoder([name])
  index = np.zeros(len(centers), dtype=np.int64)
  chunks = (encoder.encode_array(centers[i:i + chunk], index[i:i + chunk])
            for i in range(0, len(centers), chunk))
  tfrecord.write_tfrecord_gzip(path, chunks)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--records', type=int, default=200_000)
  parser.add_argument('--partition_volume', default=f'{SAMPLE}/af.h5:af')
  args = parser.parse_args()

  with tempfile.TemporaryDirectory() as tmp:
    spec = args.partition_volume
    if not os.path.exists(volume_spec.parse_volume_spec(spec).path):
      spec = os.path.join(tmp, 'af.h5') + ':af'
      print(f'computing the README partition map into {spec}')
      partitions.run(f'{SAMPLE}/groundtruth.h5:stack', spec, THRESHOLDS, (24, 24, 24))
    margin = (24, 24, 24)
    volume = coordinates.load_partition_volume(volume_spec.parse_volume_spec(spec), margin)
    ids, totals = coordinates.balanced_sample([volume], np.random.default_rng(0))
    print(f'README run: {ids.size} records ({len(totals)} partitions x {max(totals.values())})')
    centers, _ = coordinates.ids_to_centers(ids[:args.records], [volume], margin)
    name = b'validation1'

    slow_path, fast_path = os.path.join(tmp, 'slow.tfr'), os.path.join(tmp, 'fast.tfr')
    center_list = centers.tolist()
    start = time.perf_counter()
    one_at_a_time(slow_path, center_list, name)
    slow_s = time.perf_counter() - start
    start = time.perf_counter()
    ours(fast_path, centers, name, chunk=coordinates.CHUNK_RECORDS)
    fast_s = time.perf_counter() - start

    with gzip.open(slow_path, 'rb') as f:
      slow_bytes = f.read()
    with gzip.open(fast_path, 'rb') as f:
      fast_bytes = f.read()
    identical = slow_bytes == fast_bytes
    n = len(centers)
    print(f'one-at-a-time tf.train.Example writer: {n / slow_s:12,.0f} records/s ({slow_s:.2f} s)')
    print(f'ours (vectorised encoder + gzip):      {n / fast_s:12,.0f} records/s ({fast_s:.2f} s)')
    print('gzip writer: isal.igzip_threaded, 2 threads')
    print(f'decompressed files identical: {identical}')
    print(f'speed-up: {slow_s / fast_s:.1f}x')
    print(f'estimated one-at-a-time time for all {ids.size} records: {ids.size * slow_s / n:.0f} s')
    if not identical:
      sys.exit(1)


if __name__ == '__main__':
  main()
