"""Tests for ffn.utils.volume_metadata: the keys each reader wants, and reading voxel sizes back."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from ffn.utils import volume_metadata
from ffn.utils import volumes


def test_funlib_and_n5_keys_are_in_nm_and_their_own_axis_order():
  funlib = volume_metadata.funlib_attrs((4, 5, 40), (3, 2, 1))
  assert funlib == {'voxel_size': [40, 5, 4], 'offset': [40, 10, 12],
                    'axis_names': ['z', 'y', 'x'], 'units': ['nm', 'nm', 'nm']}
  # funlib.persistence needs ints; fractional sizes stay floats.
  assert volume_metadata.funlib_attrs((4.5, 4, 4), (0, 0, 0))['voxel_size'] == [4, 4, 4.5]
  n5 = volume_metadata.n5_dataset_attrs((4, 5, 40), (3, 2, 1))
  assert n5['resolution'] == [4, 5, 40] and n5['offset'] == [12, 10, 40]
  assert n5['pixelResolution'] == {'dimensions': [4, 5, 40], 'unit': 'nm'}


@pytest.mark.parametrize('attrs, order, expected', [
    ({'voxel_size_xyz': [4, 5, 40]}, 'zyx', (4, 5, 40)),
    ({'resolution': [40, 5, 4]}, 'zyx', (4, 5, 40)),  # CREMI HDF5: zyx.
    ({'resolution': [4, 5, 40]}, 'xyz', (4, 5, 40)),  # N5: xyz.
    ({'voxel_size': [40, 5, 4], 'units': ['nm'] * 3}, 'xyz', (4, 5, 40)),  # funlib: zyx.
    ({'pixelResolution': {'dimensions': [0.004, 0.005, 0.04], 'unit': 'um'}}, 'xyz',
     (4, 5, 40)),
    ({'resolution': [1, 2]}, 'zyx', None),
    ({'resolution': [0, 1, 1]}, 'zyx', None),
    ({'resolution': [1, 1, 1], 'units': ['parsec'] * 3}, 'zyx', None),
    ({}, 'zyx', None),
])
def test_voxel_size_from_attrs(attrs, order, expected):
  found = volume_metadata.voxel_size_from_attrs(attrs, order)
  if expected is None:
    assert found is None
  else:
    np.testing.assert_allclose(found, expected)


def test_volumes_report_their_voxel_size(tmp_path):
  with h5py.File(tmp_path / 'v.h5', 'w') as f:
    f['plain'] = np.zeros((2, 3, 4), np.uint8)
    f['cremi'] = np.zeros((2, 3, 4), np.uint8)
    f['cremi'].attrs['resolution'] = [40.0, 4.0, 4.0]
  assert volumes.open_volume(f'{tmp_path}/v.h5:plain').voxel_size_xyz() is None
  assert volumes.open_volume(f'{tmp_path}/v.h5:cremi').voxel_size_xyz() == (4.0, 4.0, 40.0)


def test_created_zarr3_is_compressed_with_named_axes(tmp_path):
  spec = f'zarr3://{tmp_path}/v.zarr'
  with volumes.create_volume(spec, (4, 5, 6), np.uint64, (2, 2, 2)) as out:
    out[...] = np.arange(120, dtype=np.uint64).reshape(4, 5, 6)
    out.attrs.update(voxel_size_xyz=[8.0, 8.0, 30.0])
  meta = json.loads((tmp_path / 'v.zarr' / 'zarr.json').read_text())
  assert [c['name'] for c in meta['codecs']] == ['bytes', 'gzip']
  assert meta['dimension_names'] == ['z', 'y', 'x']
  volume = volumes.open_volume(spec)
  assert volume.attrs == {'voxel_size_xyz': [8.0, 8.0, 30.0]}
  assert volume.voxel_size_xyz() == (8.0, 8.0, 30.0)
  np.testing.assert_array_equal(volume[...], np.arange(120).reshape(4, 5, 6))
