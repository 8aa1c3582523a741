"""End-to-end runs of compute_partitions.py and build_coordinates.py as subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO_ROOT, SAMPLE_DIR

THRESHOLDS = '0.025,0.05,0.075,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9'


def _run(script, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run([sys.executable, str(REPO_ROOT / script), *args], cwd=REPO_ROOT,
                        capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope='module')
def groundtruth_crop(tmp_path_factory):
  """A 60x50x40 (z,y,x) crop of the bundled groundtruth."""
  directory = tmp_path_factory.mktemp('crop')
  with h5py.File(SAMPLE_DIR / 'groundtruth.h5', 'r') as f:
    crop = f['stack'][100:160, 80:130, 50:90]
  path = directory / 'gt.h5'
  with h5py.File(path, 'w') as f:
    f.create_dataset('stack', data=crop)
  return directory, crop


def _brute_force_partitions(seg, thresholds, radius_xyz, min_size):
  seg = seg.copy()
  ids, counts = np.unique(seg, return_counts=True)
  seg[np.isin(seg, ids[counts < min_size])] = 0
  rx, ry, rz = radius_xyz
  diam = (2 * rz + 1, 2 * ry + 1, 2 * rx + 1)
  out = np.full(seg.shape, 255, np.uint8)
  inner = np.zeros((seg.shape[0] - 2 * rz, seg.shape[1] - 2 * ry, seg.shape[2] - 2 * rx),
                   np.uint8)
  windows = np.lib.stride_tricks.sliding_window_view(seg, diam)
  centre = seg[rz:seg.shape[0] - rz, ry:seg.shape[1] - ry, rx:seg.shape[2] - rx]
  same = (windows == centre[..., None, None, None]).sum(axis=(3, 4, 5))
  fraction = same / np.prod(diam)
  values = np.searchsorted(np.array(thresholds), fraction, side='right') + 1
  inner[:] = np.where(centre != 0, values, 0)
  out[rz:seg.shape[0] - rz, ry:seg.shape[1] - ry, rx:seg.shape[2] - rx] = inner
  return out


def test_pipeline_end_to_end(groundtruth_crop):
  directory, crop = groundtruth_crop
  partition_path = directory / 'af.h5'
  result = _run('compute_partitions.py', f'--input_volume={directory}/gt.h5:stack',
                f'--output_volume={partition_path}:af', f'--thresholds={THRESHOLDS}',
                '--lom_radius=4,3,2', '--min_size=100')
  assert result.returncode == 0, result.stderr
  thresholds = [float(t) for t in THRESHOLDS.split(',')]
  expected = _brute_force_partitions(crop, thresholds, (4, 3, 2), 100)
  with h5py.File(partition_path, 'r') as f:
    partitions = f['af'][...]
  np.testing.assert_array_equal(partitions, expected)

  record_path = directory / 'tf_record_file'
  result = _run('build_coordinates.py', f'--partition_volumes=validation1:{partition_path}:af',
                f'--coordinate_output={record_path}', '--margin=3,4,5')
  assert result.returncode == 0, result.stderr
  assert 'Partition counts' in result.stderr

  features = {'center': tf.io.FixedLenFeature([1, 3], tf.int64),
              'label_volume_name': tf.io.FixedLenFeature([1], tf.string)}
  dataset = tf.data.TFRecordDataset([str(record_path)], compression_type='GZIP')
  dataset = dataset.batch(10000).map(lambda r: tf.io.parse_example(r, features))
  centers = np.concatenate([b['center'].numpy().reshape(-1, 3) for b in dataset])
  names = {n for b in dataset for n in b['label_volume_name'].numpy().ravel().tolist()}
  assert names == {b'validation1'}
  sampled = partitions[3:-3, 4:-4, 5:-5]
  values, counts = np.unique(sampled[sampled != 255], return_counts=True)
  assert len(centers) == len(values) * counts.max()
  x, y, z = centers.T
  assert x.min() >= 5 and y.min() >= 4 and z.min() >= 3
  assert x.max() < 40 - 5 and y.max() < 50 - 4 and z.max() < 60 - 3
  got_values, got_counts = np.unique(partitions[z, y, x], return_counts=True)
  np.testing.assert_array_equal(got_values, values)
  assert set(got_counts.tolist()) == {counts.max()}


def _assert_clean_failure(result, directory, needle, before):
  assert result.returncode != 0
  assert needle in result.stderr, result.stderr
  assert sorted(os.listdir(directory)) == before


@pytest.mark.parametrize('flags,needle', [
    (['--input_volume={d}/missing.h5:stack'], 'missing.h5'),
    (['--input_volume={d}/gt.h5:nope'], "'nope'"),
    (['--input_volume={d}/gt.h5'], 'gt.h5'),
    (['--thresholds=0.5,0.2'], 'ascending'),
    (['--thresholds=0.2,1.5'], '1.5'),
    (['--thresholds=0.2,abc'], 'abc'),
    (['--lom_radius=4,30,2'], '[4, 30, 2]'),
    (['--lom_radius=4,3'], 'lom_radius'),
    (['--exclusion_regions=1,2,3'], 'groups of 4'),
    (['--mask_configs=masks {{ bogus: 1 }}'], 'mask_configs'),
    (['--min_size=100000000'], 'no object to partition'),
    (['--id_whitelist=12345678'], 'id_whitelist'),
])
def test_compute_partitions_bad_input(groundtruth_crop, tmp_path, flags, needle):
  directory, _ = groundtruth_crop
  base = {'--input_volume': f'{directory}/gt.h5:stack',
          '--output_volume': f'{tmp_path}/out.h5:af', '--thresholds': '0.2,0.5',
          '--lom_radius': '4,3,2', '--min_size': '100'}
  for flag in flags:
    key, value = flag.split('=', 1)
    base[key] = value.format(d=directory)
  before = sorted(os.listdir(tmp_path))
  result = _run('compute_partitions.py', *(f'{k}={v}' for k, v in base.items()))
  _assert_clean_failure(result, tmp_path, needle, before)


@pytest.mark.parametrize('flags,needle', [
    (['--partition_volumes=v:{d}/missing.h5:af'], 'missing.h5'),
    (['--partition_volumes=v:{d}/parts.h5:nope'], "'nope'"),
    (['--partition_volumes={d}/parts.h5:af'], 'no volume name'),
    (['--margin=3,30,5'], 'margin [3, 30, 5]'),
    (['--margin=3,4'], 'margin'),
    (['--partition_volumes=v:{d}/excluded.h5:af'], 'no partition'),
])
def test_build_coordinates_bad_input(tmp_path_factory, tmp_path, flags, needle):
  inputs = tmp_path_factory.mktemp('parts')
  with h5py.File(inputs / 'parts.h5', 'w') as f:
    f.create_dataset('af', data=np.ones((20, 30, 40), np.uint8))
  with h5py.File(inputs / 'excluded.h5', 'w') as f:
    f.create_dataset('af', data=np.full((20, 30, 40), 255, np.uint8))
  base = {'--partition_volumes': f'v:{inputs}/parts.h5:af',
          '--coordinate_output': f'{tmp_path}/coords', '--margin': '3,4,5'}
  for flag in flags:
    key, value = flag.split('=', 1)
    base[key] = value.format(d=inputs)
  before = sorted(os.listdir(tmp_path))
  result = _run('build_coordinates.py', *(f'{k}={v}' for k, v in base.items()))
  _assert_clean_failure(result, tmp_path, needle, before)
