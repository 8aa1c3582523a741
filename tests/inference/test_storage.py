"""Tests of the inference storage layer: paths, quantisation, segmentation files, volumes."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import h5py
import numpy as np
import pytest

from ffn.inference import inference_pb2
from ffn.inference.io import probmaps
from ffn.inference.io import results
from ffn.inference.io import volumes

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

# A non-cubic zyx corner, so that any xyz/zyx confusion shows.
CORNER = (3, 20, 100)


# ----------------------------------------------------------------------------
# Paths.


def test_paths_new_layout(tmp_path):
  d = str(tmp_path)
  assert results.subvolume_path(d, CORNER, 'npz') == os.path.join(d, '100', '20', 'seg-100_20_3.npz')
  assert results.segmentation_path(d, CORNER).endswith(os.path.join('100', '20', 'seg-100_20_3.npz'))
  assert results.object_prob_path(d, CORNER).endswith(os.path.join('100', '20', 'seg-100_20_3.prob'))
  assert results.checkpoint_path(d, CORNER).endswith(os.path.join('100', '20', 'seg-100_20_3.cpoint'))
  assert results.segmentation_path(d, (0, 0, 0)) == os.path.join(d, '0', '0', 'seg-0_0_0.npz')


def test_paths_legacy_layout(tmp_path):
  d = str(tmp_path)
  assert results.legacy_subvolume_path(d, CORNER, 'align') == os.path.join(d, 'seg-100_20_3.align')
  assert results.legacy_segmentation_path(d, CORNER) == os.path.join(d, 'seg-100_20_3.npz')
  assert results.legacy_object_prob_path(d, CORNER) == os.path.join(d, 'seg-100_20_3.prob')


def test_corner_from_path_is_zyx_both_directions(tmp_path):
  d = str(tmp_path)
  assert results.get_corner_from_path(os.path.join(d, '1', '2', 'seg-1_2_3.npz')) == (3, 2, 1)
  for corner in [CORNER, (7, 0, 12), (0, 5, 0)]:
    for path in (results.segmentation_path(d, corner), results.legacy_segmentation_path(d, corner),
                 results.object_prob_path(d, corner)):
      assert results.get_corner_from_path(path) == corner
  with pytest.raises(ValueError, match='not-a-seg'):
    results.get_corner_from_path('/x/not-a-seg.npz')


def _touch(path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb'):
    pass


def test_existing_corners_and_subvolume_path_precedence(tmp_path):
  d = str(tmp_path)
  a, b, c = (0, 0, 0), (3, 20, 100), (9, 8, 7)
  _touch(results.segmentation_path(d, a))
  _touch(results.legacy_segmentation_path(d, b))
  _touch(results.checkpoint_path(d, c))
  _touch(results.object_prob_path(d, c))
  assert results.get_existing_corners(d) == sorted([a, b])

  assert results.get_existing_subvolume_path(d, a) == results.segmentation_path(d, a)
  assert results.get_existing_subvolume_path(d, b) == results.legacy_segmentation_path(d, b)
  assert results.get_existing_subvolume_path(d, c) is None
  assert results.get_existing_subvolume_path(d, c, allow_cpoint=True) == results.checkpoint_path(d, c)
  # The new layout wins over the legacy one and over a checkpoint.
  _touch(results.legacy_segmentation_path(d, a))
  _touch(results.checkpoint_path(d, a))
  assert results.get_existing_subvolume_path(d, a, True) == results.segmentation_path(d, a)


# ----------------------------------------------------------------------------
# Quantisation.


def test_quantize_exact_values():
  p = np.array([0.0, 1.0, np.nan, 0.5, 1.5 / 254, 0.999, 1e-7, 2.0, -0.1], dtype=np.float32)
  q = probmaps.quantize_probability(p)
  assert q.dtype == np.uint8
  np.testing.assert_array_equal(q, [1, 255, 0, 128, 2, 254, 1, 255, 0])


def test_quantize_matches_floor_formula_inside_bins():
  # Bin centres avoid the float ambiguity at the bin edges.
  p = (np.arange(254) + 0.5) / 254
  np.testing.assert_array_equal(probmaps.quantize_probability(p), np.floor(p * 254) + 1)


def test_dequantize_exact_values_and_round_trip():
  q = np.array([0, 1, 128, 255], dtype=np.uint8)
  dq = probmaps.dequantize_probability(q)
  assert dq.dtype == np.float32
  assert np.isnan(dq[0])
  np.testing.assert_allclose(dq[1:], [0.5 / 255, 127.5 / 255, 254.5 / 255], rtol=1e-6)
  p = np.random.default_rng(1).random((3, 4, 5)).astype(np.float32)
  p[0, 0, 0] = np.nan
  back = probmaps.dequantize_probability(probmaps.quantize_probability(p))
  assert np.isnan(back[0, 0, 0])
  assert np.nanmax(np.abs(back - p)) < 1.5 / 254


def test_probability_map_file_round_trip(tmp_path):
  path = results.object_prob_path(str(tmp_path), CORNER)
  p = np.random.default_rng(2).random((2, 3, 4)).astype(np.float32)
  p[1, 2, 3] = np.nan
  probmaps.save_probability_map(p, path)
  with np.load(path) as data:
    assert data.files == ['qprob']
    np.testing.assert_array_equal(data['qprob'], probmaps.quantize_probability(p))
  np.testing.assert_array_equal(probmaps.load_quantized_probability(path),
                                probmaps.quantize_probability(p))
  loaded = probmaps.load_probability_map(path)
  np.testing.assert_array_equal(np.isnan(loaded), np.isnan(p))
  probmaps.save_probability_map(probmaps.quantize_probability(p), path, quantized=True)
  np.testing.assert_array_equal(probmaps.load_quantized_probability(path),
                                probmaps.quantize_probability(p))
  with pytest.raises(ValueError, match='quantized=True'):
    probmaps.save_probability_map(np.zeros(3, np.uint8), path)
  with pytest.raises(ValueError, match='uint8'):
    probmaps.save_probability_map(np.zeros(3, np.float32), path, quantized=True)


# ----------------------------------------------------------------------------
# Segmentation files.


def _sample_labels():
  """zyx (4, 5, 6) labels: id 3 in two pieces, id 7 of 2 voxels, id 9 of 12 voxels."""
  labels = np.zeros((4, 5, 6), dtype=np.int64)
  labels[0, 0, 0:3] = 3           # first piece of 3 (3 voxels)
  labels[2:4, 3:5, 4:6] = 3       # second piece of 3 (8 voxels)
  labels[3, 0, 0:2] = 7           # 2 voxels
  labels[1:3, 1:3, 1:4] = 9       # 12 voxels
  origins = {
      3: results.OriginInfo((0, 0, 1), 4, 0.25),
      7: results.OriginInfo((3, 0, 0), 1, 0.5),
      9: results.OriginInfo((1, 1, 2), 9, 1.5),
  }
  return labels, origins


def test_save_subvolume_keys_and_dtype(tmp_path):
  labels, origins = _sample_labels()
  path = results.segmentation_path(str(tmp_path), CORNER)
  results.save_subvolume(labels, origins, path, request=b'\x08\x01', counters='{"a": 1}',
                         overlaps={3: np.array([[7, 9], [5, 2]]), 7: np.zeros((2, 0))})
  # Our files hold no pickles: they load with allow_pickle=False.
  with np.load(path, allow_pickle=False) as data:
    assert sorted(data.files) == ['counters', 'origins', 'overlaps', 'request', 'segmentation']
    assert data['segmentation'].dtype == np.uint8
    np.testing.assert_array_equal(data['segmentation'], labels)
    assert results.decode_origins(data['origins']) == origins
    assert data['request'].item() == b'\x08\x01'
    assert json.loads(str(data['counters'])) == {'a': 1}
    # One row per (segment, overlapped segment): ids and voxel counts in their own columns.
    assert data['overlaps'].dtype == results.OVERLAPS_DTYPE
    assert data['overlaps'].tolist() == [(3, 7, 5), (3, 9, 2)]
    decoded = results.decode_overlaps(data['overlaps'])
    assert {k: v.tolist() for k, v in decoded.items()} == {3: [[7, 9], [5, 2]]}
  big = labels.astype(np.uint64) * 1000
  results.save_subvolume(big, {}, path)
  with np.load(path, allow_pickle=True) as data:
    assert data['segmentation'].dtype == np.uint16
  assert results.load_origins(str(tmp_path), CORNER) == {}


def test_load_segmentation_no_cleanup_is_identity(tmp_path):
  labels, origins = _sample_labels()
  results.save_subvolume(labels, origins, results.segmentation_path(str(tmp_path), CORNER))
  seg, got_origins = results.load_segmentation(str(tmp_path), CORNER, split_cc=False)
  assert seg.dtype == np.uint64
  np.testing.assert_array_equal(seg, labels)
  assert got_origins == origins
  assert results.load_origins(str(tmp_path), CORNER) == origins


def test_load_segmentation_split_cc_remaps_origins(tmp_path):
  labels, origins = _sample_labels()
  results.save_subvolume(labels, origins, results.segmentation_path(str(tmp_path), CORNER))
  seg, got_origins = results.load_segmentation(str(tmp_path), CORNER)
  assert seg.dtype == np.uint64
  new_ids = set(np.unique(seg).tolist()) - {0}
  assert len(new_ids) == 4  # id 3 split into two
  np.testing.assert_array_equal(seg > 0, labels > 0)
  assert set(got_origins) == new_ids
  for new_id in new_ids:
    old = np.unique(labels[seg == new_id])
    assert len(old) == 1
    assert got_origins[new_id] == origins[int(old[0])]
  # The two pieces of id 3 are distinct objects.
  assert seg[0, 0, 0] != seg[3, 4, 5]


def test_load_segmentation_min_size(tmp_path):
  labels, origins = _sample_labels()
  results.save_subvolume(labels, origins, results.segmentation_path(str(tmp_path), CORNER))
  seg, got_origins = results.load_segmentation(str(tmp_path), CORNER, split_cc=False, min_size=3)
  expected = labels.copy()
  expected[expected == 7] = 0
  np.testing.assert_array_equal(seg, expected)
  assert got_origins == {3: origins[3], 9: origins[9]}

  seg, got_origins = results.load_segmentation(str(tmp_path), CORNER, split_cc=True, min_size=4)
  # Id 7 (2 voxels) and the 3-voxel piece of id 3 are gone.
  assert seg[3, 0, 0] == 0 and seg[0, 0, 0] == 0
  assert np.count_nonzero(seg) == 8 + 12
  assert sorted(got_origins.values()) == sorted([origins[3], origins[9]])


def test_load_segmentation_threshold(tmp_path):
  d = str(tmp_path)
  labels, origins = _sample_labels()
  results.save_subvolume(labels, origins, results.segmentation_path(d, CORNER))
  prob = np.full(labels.shape, 0.9, dtype=np.float32)
  prob[1:3, 1:3, 1:2] = 0.3   # a slab of id 9
  prob[0, 0, 0] = np.nan      # NaN never falls below a threshold
  with pytest.raises(ValueError, match='probability map'):
    results.load_segmentation(d, CORNER, threshold=0.5)
  probmaps.save_probability_map(prob, results.object_prob_path(d, CORNER))
  seg, _ = results.load_segmentation(d, CORNER, threshold=0.5, split_cc=False)
  expected = labels.copy()
  expected[1:3, 1:3, 1:2] = 0
  np.testing.assert_array_equal(seg, expected)


def test_load_segmentation_legacy_threshold_and_source(tmp_path):
  d = str(tmp_path)
  labels, origins = _sample_labels()
  results.save_subvolume(labels, origins, results.legacy_segmentation_path(d, CORNER))
  prob = np.full(labels.shape, 0.9, dtype=np.float32)
  prob[3] = 0.1
  probmaps.save_probability_map(prob, results.legacy_object_prob_path(d, CORNER))
  source = inference_pb2.SegmentationSource(directory=d, threshold=0.5, split_cc=False)
  seg, got_origins = results.load_segmentation_from_source(source, CORNER)
  expected = labels.copy()
  expected[3] = 0
  np.testing.assert_array_equal(seg, expected)
  assert got_origins == origins
  source = inference_pb2.SegmentationSource(directory=d, min_size=3)
  seg, got_origins = results.load_segmentation_from_source(source, CORNER)
  assert 7 not in np.unique(labels[seg > 0])
  assert len(got_origins) == 3


def test_load_segmentation_missing_names_path(tmp_path):
  d = str(tmp_path)
  with pytest.raises(ValueError, match='seg-100_20_3.npz'):
    results.load_segmentation(d, CORNER)
  with pytest.raises(ValueError, match='seg-100_20_3.npz'):
    results.load_origins(d, CORNER)


def test_load_segmentation_all_zero_fast_path(tmp_path):
  d = str(tmp_path)
  results.save_subvolume(np.zeros((2, 3, 4), np.uint64), {5: results.OriginInfo((0, 0, 0), 1, 1.0)},
                         results.segmentation_path(d, CORNER))
  seg, origins = results.load_segmentation(d, CORNER, threshold=0.5, min_size=10)
  assert seg.dtype == np.uint64 and seg.shape == (2, 3, 4)
  assert not seg.any()
  assert origins == {}


def test_load_checkpoint_only_when_allowed(tmp_path):
  d = str(tmp_path)
  labels, origins = _sample_labels()
  cpoint = labels.astype(np.int32)
  cpoint[0, 4, 5] = -1  # A failed-seed marker, as the canvas leaves it.
  path = results.checkpoint_path(d, CORNER)
  os.makedirs(os.path.dirname(path))
  with open(path, 'wb') as f:
    np.savez_compressed(f, segmentation=cpoint, origins=origins, seed=np.zeros(3, np.float32))
  with pytest.raises(ValueError, match='seg-100_20_3'):
    results.load_segmentation(d, CORNER)
  seg, got_origins = results.load_segmentation(d, CORNER, allow_cpoint=True, split_cc=False)
  np.testing.assert_array_equal(seg, labels)
  assert got_origins == origins


class _Unpicklable:

  def __reduce__(self):
    raise RuntimeError('cannot pickle this')


def test_failing_writer_leaves_nothing(tmp_path):
  d = str(tmp_path)
  labels, origins = _sample_labels()
  path = results.segmentation_path(d, CORNER)
  with pytest.raises(RuntimeError, match='cannot pickle'):
    results.save_subvolume(labels, origins, path, broken=np.array(_Unpicklable(), dtype=object))
  assert not os.path.exists(path)
  assert os.listdir(os.path.dirname(path)) == []

  # An existing result is kept intact when a later write fails.
  results.save_subvolume(labels, origins, path)
  before = open(path, 'rb').read()
  with pytest.raises(RuntimeError):
    results.save_subvolume(labels * 0, {}, path, broken=np.array(_Unpicklable(), dtype=object))
  assert open(path, 'rb').read() == before
  assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]


def test_saved_npz_has_exact_name_without_extra_suffix(tmp_path):
  path = results.object_prob_path(str(tmp_path), CORNER)
  probmaps.save_probability_map(np.zeros((1, 2, 3), np.float32), path)
  assert os.listdir(os.path.dirname(path)) == ['seg-100_20_3.prob']


# ----------------------------------------------------------------------------
# Volumes.


def _ts_zarr(path, data):
  import tensorstore as ts  # pylint: disable=g-import-not-at-top
  spec = {'driver': 'zarr', 'kvstore': {'driver': 'file', 'path': str(path)}}
  store = ts.open(spec, create=True, dtype=ts.dtype(data.dtype.name), shape=data.shape).result()
  store[...] = data
  return json.dumps(spec)


def test_tensorstore_zarr_volume(tmp_path):
  data = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
  settings = inference_pb2.DecoratedVolume(tensorstore=_ts_zarr(tmp_path / 'vol.zarr', data))
  volume = volumes.decorated_volume(settings)
  assert volume.shape == (3, 4, 5)
  assert volume.ndim == 3
  assert volume.dtype == np.uint16
  for index in [np.index_exp[1:3, 0:2, 4], np.index_exp[...], np.index_exp[-1],
                np.index_exp[:, ::-1, 1:10], np.index_exp[np.int64(2), 1:3, ...],
                np.index_exp[2:1], np.index_exp[..., ::2]]:
    got = volume[index]
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, data[index])
  np.testing.assert_array_equal(np.asarray(volume), data)
  with pytest.raises(IndexError):
    volume[3]


def test_tensorstore_4d_and_bad_specs(tmp_path):
  data = np.random.default_rng(3).random((2, 3, 4, 5)).astype(np.float32)
  volume = volumes.decorated_volume(
      inference_pb2.DecoratedVolume(tensorstore=_ts_zarr(tmp_path / 'v4.zarr', data)))
  assert volume.ndim == 4
  np.testing.assert_array_equal(volume[:, 1:3, 2:, :4], data[:, 1:3, 2:, :4])

  flat = np.zeros((4, 5), np.uint8)
  with pytest.raises(ValueError, match='3-D'):
    volumes.decorated_volume(
        inference_pb2.DecoratedVolume(tensorstore=_ts_zarr(tmp_path / 'v2.zarr', flat)))
  with pytest.raises(ValueError, match='JSON'):
    volumes.decorated_volume(inference_pb2.DecoratedVolume(tensorstore='{not json'))
  missing = json.dumps({'driver': 'zarr', 'kvstore': {'driver': 'file',
                                                      'path': str(tmp_path / 'nope')}})
  with pytest.raises(ValueError, match='nope'):
    volumes.decorated_volume(inference_pb2.DecoratedVolume(tensorstore=missing))


def test_hdf5_volumes(tmp_path):
  path = tmp_path / 'vol.h5'
  data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  with h5py.File(path, 'w') as f:
    f.create_dataset('raw', data=data)
    f.create_dataset('grp/five', data=np.zeros((1, 1, 1, 1, 1)))
  for spec in (f'{path}:raw', f'{path}@raw'):
    volume = volumes.decorated_volume(inference_pb2.DecoratedVolume(hdf5=spec))
    assert volume.shape == (2, 3, 4)
    np.testing.assert_array_equal(volume[:, 1:, 2], data[:, 1:, 2])
  with pytest.raises(ValueError, match='missing'):
    volumes.decorated_volume(inference_pb2.DecoratedVolume(hdf5=f'{path}:missing'))
  with pytest.raises(ValueError, match='does not exist'):
    volumes.decorated_volume(inference_pb2.DecoratedVolume(hdf5=f'{tmp_path}/no.h5:raw'))
  with pytest.raises(ValueError, match='3-D'):
    volumes.decorated_volume(inference_pb2.DecoratedVolume(hdf5=f'{path}:grp/five'))
  with pytest.raises(ValueError, match='decorator_specs'):
    volumes.decorated_volume(inference_pb2.DecoratedVolume(hdf5=f'{path}:raw',
                                                           decorator_specs='x'))


def test_unsupported_volume_sources():
  with pytest.raises(NotImplementedError, match='volinfo'):
    volumes.decorated_volume(inference_pb2.DecoratedVolume(volinfo='some/volume'))
  with pytest.raises(ValueError, match='no volume'):
    volumes.decorated_volume(inference_pb2.DecoratedVolume())


def test_clip_subvolume_to_bounds():
  volume = np.zeros((2, 4, 5, 6))  # c, z, y, x
  corner, size = volumes.clip_subvolume_to_bounds((-1, 2, 3), (3, 5, 10), volume)
  np.testing.assert_array_equal(corner, (0, 2, 3))
  np.testing.assert_array_equal(size, (2, 3, 3))
  corner, size = volumes.clip_subvolume_to_bounds((1, 1, 1), (2, 2, 2), np.zeros((4, 5, 6)))
  np.testing.assert_array_equal(corner, (1, 1, 1))
  np.testing.assert_array_equal(size, (2, 2, 2))
  _, size = volumes.clip_subvolume_to_bounds((10, 0, 0), (2, 2, 2), np.zeros((4, 5, 6)))
  assert size[0] == 0


def test_storage_does_not_import_tensorflow():
  code = ('import sys; import ffn.inference.storage, ffn.inference.inference_utils, '
          'ffn.inference.align; sys.exit(int("tensorflow" in sys.modules))')
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT, check=False)
  assert result.returncode == 0, 'storage pulled in TensorFlow'
