"""Tests for ffn.training.partitions against a brute-force reference on non-cubic volumes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from google.protobuf import text_format

from ffn.inference import inference_pb2
from ffn.training import partitions
from ffn.utils import bounding_box


def _brute_force(seg, thresholds, radius_xyz, min_size, whitelist=None):
  """Voxel-by-voxel definition: count same-object voxels in the (2r+1) box, then classify."""
  seg = seg.copy()
  ids, counts = np.unique(seg, return_counts=True)
  for i, c in zip(ids, counts):
    if c < min_size:
      seg[seg == i] = 0
  rx, ry, rz = radius_xyz
  nz, ny, nx = seg.shape
  out = np.zeros((nz - 2 * rz, ny - 2 * ry, nx - 2 * rx), np.uint8)
  box_volume = (2 * rx + 1) * (2 * ry + 1) * (2 * rz + 1)
  for z in range(out.shape[0]):
    for y in range(out.shape[1]):
      for x in range(out.shape[2]):
        label = seg[z + rz, y + ry, x + rx]
        if label == 0 or (whitelist is not None and label not in whitelist):
          continue
        box = seg[z:z + 2 * rz + 1, y:y + 2 * ry + 1, x:x + 2 * rx + 1]
        fraction = np.count_nonzero(box == label) / box_volume
        value = len(thresholds) + 1
        for i, t in enumerate(thresholds):
          if fraction < t:
            value = i + 1
            break
        out[z, y, x] = value
  return out


def _blobby_labels(shape, seed, num_ids=6):
  """Smooth-ish random objects so that every class appears."""
  rng = np.random.default_rng(seed)
  coarse = rng.integers(0, num_ids, size=tuple(-(-s // 3) for s in shape))
  seg = coarse.repeat(3, 0).repeat(3, 1).repeat(3, 2)[:shape[0], :shape[1], :shape[2]]
  noise = rng.random(shape) < 0.1
  seg = np.where(noise, rng.integers(0, num_ids, size=shape), seg)
  return seg.astype(np.int64) * 1000  # Sparse ids exercise the relabelling.


THRESHOLDS = [0.1, 0.3, 0.5, 0.7, 0.9]


@pytest.mark.parametrize('radius', [(2, 1, 3), (0, 2, 1), (1, 1, 1)])
@pytest.mark.parametrize('workers', [1, 2])
def test_matches_brute_force_anisotropic(radius, workers):
  seg = _blobby_labels((11, 9, 13), seed=sum(radius))
  expected = _brute_force(seg, THRESHOLDS, radius, min_size=5)
  corner, out = partitions.compute_partitions(seg.copy(), THRESHOLDS, radius, min_size=5,
                                              workers=workers)
  np.testing.assert_array_equal(corner, radius)
  assert out.dtype == np.uint8
  np.testing.assert_array_equal(out, expected)
  assert len(np.unique(out)) >= 3


def test_large_and_negative_ids_use_the_general_path():
  seg = _blobby_labels((7, 8, 9), seed=3).astype(np.int64)
  seg[seg == 1000] = -5
  seg[seg == 2000] = 2**40
  expected = _brute_force(seg, THRESHOLDS, (1, 2, 1), min_size=1)
  _, out = partitions.compute_partitions(seg.copy(), THRESHOLDS, (1, 2, 1), min_size=1)
  np.testing.assert_array_equal(out, expected)


def test_min_size_erases_small_objects():
  seg = np.zeros((6, 7, 8), np.int64)
  seg[1:5, 1:6, 1:7] = 1         # 120 voxels
  seg[2, 3, 4] = 2               # dust
  _, out = partitions.compute_partitions(seg.copy(), [0.5], (1, 1, 1), min_size=2)
  assert out[1, 2, 3] == 0       # voxel (2,3,4) of the dust, in valid coordinates
  _, out_keep = partitions.compute_partitions(seg.copy(), [0.5], (1, 1, 1), min_size=1)
  assert out_keep[1, 2, 3] == 1  # alone in its box: fraction 1/27 < 0.5


def test_id_whitelist_takes_ints():
  seg = _blobby_labels((9, 8, 10), seed=7)
  whitelist = partitions.parse_id_whitelist(['2000', ' 3000'])
  assert whitelist == [2000, 3000]
  expected = _brute_force(seg, THRESHOLDS, (1, 1, 2), 1, whitelist={2000, 3000})
  _, out = partitions.compute_partitions(seg.copy(), THRESHOLDS, (1, 1, 2), min_size=1,
                                         id_whitelist=whitelist)
  np.testing.assert_array_equal(out, expected)
  assert np.any(out > 0)
  with pytest.raises(partitions.PartitionError, match='abc'):
    partitions.parse_id_whitelist(['abc'])


def test_exclusion_regions_are_global_xyz_spheres():
  seg = np.ones((10, 12, 14), np.int64)
  regions = partitions.parse_exclusion_regions(['6', '5', '4', '2', '1', '1', '1', '0'])
  assert regions == [partitions.ExclusionRegion(6, 5, 4, 2), partitions.ExclusionRegion(1, 1, 1, 0)]
  radius = (1, 2, 3)  # xyz
  corner, out = partitions.compute_partitions(seg, [0.5], radius, min_size=1,
                                              exclusion_regions=regions)
  z, y, x = np.mgrid[:out.shape[0], :out.shape[1], :out.shape[2]]
  gx, gy, gz = x + corner[0], y + corner[1], z + corner[2]
  inside = ((gx - 6) ** 2 + (gy - 5) ** 2 + (gz - 4) ** 2 <= 4) | (
      (gx == 1) & (gy == 1) & (gz == 1))
  np.testing.assert_array_equal(out == 255, inside)
  assert np.all(out[~inside] == 2)


@pytest.mark.parametrize('values', [['1', '2', '3'], ['1', '2', 'x', '3'], ['1', '2', '3', '-1']])
def test_bad_exclusion_regions(values):
  with pytest.raises(partitions.PartitionError, match='exclusion'):
    partitions.parse_exclusion_regions(values)


def test_mask_excludes_voxels_whose_box_touches_it():
  seg = np.ones((9, 10, 11), np.int64)
  mask = np.zeros(seg.shape, bool)
  mask[4, 2, 8] = True
  radius = (2, 1, 1)  # xyz
  _, out = partitions.compute_partitions(seg, [0.5], radius, min_size=1, mask=mask)
  rz, ry, rx = 1, 1, 2
  expected = np.zeros(out.shape, bool)
  for z in range(out.shape[0]):
    for y in range(out.shape[1]):
      for x in range(out.shape[2]):
        expected[z, y, x] = mask[z:z + 2 * rz + 1, y:y + 2 * ry + 1, x:x + 2 * rx + 1].any()
  np.testing.assert_array_equal(out == 255, expected)
  assert expected.sum() > 0


def test_mask_configs_from_text(tmp_path):
  seg = np.ones((8, 9, 10), np.int64)
  path = tmp_path / 'seg.h5'
  with h5py.File(path, 'w') as f:
    f.create_dataset('stack', data=seg)
  configs = text_format.Parse(
      'masks { coordinate_expression { expression: "x >= 8" } }', inference_pb2.MaskConfigs())
  out_path = tmp_path / 'out.h5'
  partitions.run(f'{path}:stack', f'{out_path}:af', [0.5], (1, 1, 1), mask_configs=configs,
                 min_size=1)
  with h5py.File(out_path, 'r') as f:
    out = f['af'][...]
  # Valid voxels whose 3-box reaches x >= 8 (global x >= 7) are excluded; the border stays 255.
  assert np.all(out[1:-1, 1:-1, 7:9] == 255)
  assert np.all(out[1:-1, 1:-1, 1:7] == 2)


def test_run_writes_upstream_format(tmp_path):
  seg = _blobby_labels((12, 10, 14), seed=11)
  path = tmp_path / 'gt.h5'
  boxes = np.array([[[0, 0, 0], [14, 10, 12]], [[1, 1, 1], [3, 3, 3]]])
  with h5py.File(path, 'w') as f:
    ds = f.create_dataset('stack', data=seg)
    ds.attrs['bounding_boxes'] = boxes
  out_path = tmp_path / 'af.h5'
  radius = (2, 1, 3)
  counts = partitions.run(f'{path}:stack', f'{out_path}:af', THRESHOLDS, radius, min_size=4)
  expected = _brute_force(seg, THRESHOLDS, radius, 4)
  with h5py.File(out_path, 'r') as f:
    ds = f['af']
    assert ds.shape == seg.shape and ds.dtype == np.uint8
    assert ds.compression == 'gzip' and ds.chunks is not None and ds.fillvalue == 255
    data = ds[...]
    np.testing.assert_array_equal(data[3:-3, 1:-1, 2:-2], expected)
    border = np.ones(seg.shape, bool)
    border[3:-3, 1:-1, 2:-2] = False
    assert np.all(data[border] == 255)
    # Only the first box survives shrinking by the radius on both ends.
    np.testing.assert_array_equal(ds.attrs['bounding_boxes'], [[[2, 1, 3], [10, 8, 6]]])
    np.testing.assert_array_equal(ds.attrs['partition_counts'],
                                  np.array(np.unique(expected, return_counts=True)))
  np.testing.assert_array_equal(counts, np.array(np.unique(expected, return_counts=True)))


def test_adjust_bboxes():
  boxes = [bounding_box.BoundingBox((0, 0, 0), (10, 6, 6)),
           bounding_box.BoundingBox((0, 0, 0), (4, 4, 4))]
  adjusted = partitions.adjust_bboxes(boxes, (1, 1, 2))
  assert adjusted == [bounding_box.BoundingBox((1, 1, 2), (8, 4, 2))]


@pytest.mark.parametrize('thresholds,match', [
    ([0.5, 0.2], 'ascending'), ([0.2, 0.2], 'ascending'), ([0.0, 0.5], 'out of range'),
    ([0.5, 1.5], 'out of range'), ([], 'at least one')])
def test_bad_thresholds(thresholds, match):
  with pytest.raises(partitions.PartitionError, match=match):
    partitions.validate_thresholds(thresholds)


def test_radius_too_large():
  with pytest.raises(partitions.PartitionError, match=r'lom_radius \[5, 1, 1\]'):
    partitions.compute_partitions(np.ones((4, 5, 10), np.int64), [0.5], (5, 1, 1), min_size=1)
  with pytest.raises(partitions.PartitionError, match='non-negative'):
    partitions.validate_lom_radius((1, -1, 1), (5, 5, 5))


def test_empty_partition_set():
  seg = _blobby_labels((6, 7, 8), seed=1)
  with pytest.raises(partitions.PartitionError, match='min_size=100000'):
    partitions.compute_partitions(seg.copy(), [0.5], (1, 1, 1), min_size=100000)
  with pytest.raises(partitions.PartitionError, match='id_whitelist'):
    partitions.compute_partitions(seg.copy(), [0.5], (1, 1, 1), min_size=1, id_whitelist=[7])
