"""ffn.utils.volumes: one small non-cubic volume in HDF5, zarr, N5 and precomputed reads the same,
and gives the same partitions, training patches and evaluation."""

from __future__ import annotations

import dataclasses
import json
import os

import h5py
import numpy as np
import pytest

from ffn.analysis import evaluation
from ffn.training import inputs
from ffn.training import partitions
from ffn.utils import bounding_box
from ffn.utils import volumes

SHAPE_ZYX = (12, 14, 17)
FORMATS = ('hdf5', 'zarr', 'zarr3', 'n5', 'precomputed')


def _labels() -> np.ndarray:
  """Blocks of ids with a few odd voxels, shape SHAPE_ZYX."""
  z, y, x = np.indices(SHAPE_ZYX)
  labels = (1 + z // 6 * 9 + y // 5 * 3 + x // 6).astype(np.uint64)
  labels[3, 4, 5] = 40
  return labels


def _spec(tmp_path, fmt: str, name: str) -> str:
  """The spec of volume `name` in format `fmt` under tmp_path."""
  if fmt == 'hdf5':
    return f'{tmp_path}/{name}.h5:{name}'
  return f'{fmt}://{tmp_path}/{name}.{fmt}'


def _write(spec: str, data: np.ndarray) -> str:
  with volumes.create_volume(spec, data.shape, data.dtype, chunks_zyx=(5, 6, 7)) as out:
    out.write(bounding_box.BoundingBox.from_zyx((0, 0, 0), data.shape), data)
  return spec


@pytest.mark.parametrize('fmt', FORMATS)
def test_round_trip_and_lazy_reads(tmp_path, fmt):
  data = _labels()
  spec = _write(_spec(tmp_path, fmt, 'seg'), data)
  with volumes.open_volume(spec, ndims=(3,)) as volume:
    assert volume.shape == SHAPE_ZYX and volume.dtype == np.uint64
    np.testing.assert_array_equal(volume[...], data)
    for index in [np.index_exp[1:3, 0:2, 4], np.index_exp[-1], np.index_exp[:, ::-1, 1:10],
                  np.index_exp[2:1], np.index_exp[..., ::2], np.index_exp[:, 13:2:-3, 5]]:
      np.testing.assert_array_equal(volume[index], data[index])
    box = bounding_box.BoundingBox(start=(2, 3, 4), size=(5, 6, 7))  # xyz
    np.testing.assert_array_equal(volume.read(box), data[4:11, 3:9, 2:7])


@pytest.mark.parametrize('fmt', ('zarr', 'n5', 'precomputed'))
def test_existing_tensorstore_volumes_take_box_writes(tmp_path, fmt):
  data = _labels()
  spec = _write(_spec(tmp_path, fmt, 'seg'), np.zeros_like(data))
  store = volumes.open_tensorstore_for_writing(spec)  # zyx, whatever the format's order
  assert tuple(store.shape) == SHAPE_ZYX
  store[2:9, 1:5, 3:16].write(data[2:9, 1:5, 3:16]).result()
  expected = np.zeros_like(data)
  expected[2:9, 1:5, 3:16] = data[2:9, 1:5, 3:16]
  np.testing.assert_array_equal(volumes.read_volume(spec), expected)
  with pytest.raises(volumes.VolumeSpecError, match='for writing'):
    volumes.open_tensorstore_for_writing(f'zarr://{tmp_path}/missing.zarr')


def test_json_spec_equals_short_form(tmp_path):
  data = _labels()
  _write(f'zarr://{tmp_path}/v.zarr', data)
  spec = json.dumps({'driver': 'zarr', 'kvstore': {'driver': 'file', 'path': f'{tmp_path}/v.zarr'}})
  np.testing.assert_array_equal(volumes.read_volume(spec), data)


def test_writes_are_atomic(tmp_path):
  for spec in (f'{tmp_path}/a.h5:raw', f'zarr://{tmp_path}/a.zarr'):
    with pytest.raises(RuntimeError):
      with volumes.create_volume(spec, (2, 3, 4), np.uint8) as out:
        out[...] = np.ones((2, 3, 4))
        raise RuntimeError('interrupted')
  assert os.listdir(tmp_path) == []


def test_bad_specs(tmp_path):
  with pytest.raises(volumes.VolumeSpecError, match='not valid JSON'):
    volumes.open_volume('{"driver": ')
  with pytest.raises(volumes.VolumeSpecError, match='nope'):
    volumes.open_volume(f'zarr://{tmp_path}/nope.zarr')
  with pytest.raises(volumes.VolumeSpecError, match='no path'):
    volumes.open_volume('n5://')
  volumes.create_volume(f'zarr://{tmp_path}/flat.zarr', (3, 4, 5, 6), np.uint8).commit()
  with pytest.raises(volumes.VolumeSpecError, match='3-D'):
    volumes.open_volume(f'zarr://{tmp_path}/flat.zarr', ndims=(3,))


def test_named_specs_of_every_form():
  specs = volumes.parse_named_volume_specs(
      ['a:x.h5:raw', 'b:zarr:///d/v.zarr', 'c:{"driver": "n5", "kvstore": "file:///d/v.n5"}'])
  assert specs['a'] == volumes.VolumeSpec('x.h5', 'raw', 'a')
  assert specs['b'] == 'zarr:///d/v.zarr'
  assert json.loads(specs['c'])['driver'] == 'n5'


def _all_formats(tmp_path, name: str, data: np.ndarray) -> dict[str, str]:
  return {fmt: _write(_spec(tmp_path / fmt, fmt, name), data) for fmt in FORMATS
          if not os.makedirs(tmp_path / fmt, exist_ok=True)}


def test_same_partitions_in_every_format(tmp_path):
  specs = _all_formats(tmp_path, 'gt', _labels())
  results = {}
  for fmt, spec in specs.items():
    out = _spec(tmp_path / fmt, 'hdf5' if fmt == 'precomputed' else fmt, 'af')
    partitions.run(spec, out, thresholds=[0.3, 0.6], lom_radius=(2, 2, 1), min_size=2)
    results[fmt] = volumes.read_volume(out)
  for fmt in FORMATS[1:]:
    np.testing.assert_array_equal(results[fmt], results['hdf5'], err_msg=fmt)
  assert len(np.unique(results['hdf5'])) > 2


def test_same_training_patches_in_every_format(tmp_path):
  image = (np.arange(np.prod(SHAPE_ZYX)) % 251).astype(np.uint8).reshape(SHAPE_ZYX)
  images = _all_formats(tmp_path, 'image', image)
  labels = _all_formats(tmp_path, 'labels', _labels())
  patches = {}
  for fmt in FORMATS:
    source = inputs.VolumeSource([f'v:{images[fmt]}'], [f'v:{labels[fmt]}'])
    patches[fmt] = source.load((8, 7, 6), b'v', (5, 7, 3), (3, 3, 3))
  for fmt in FORMATS[1:]:
    for got, want in zip(patches[fmt], patches['hdf5']):
      np.testing.assert_array_equal(got, want, err_msg=fmt)
  assert patches['hdf5'][0].shape == (3, 7, 5, 1)


def test_same_evaluation_in_every_format(tmp_path):
  gt = _labels()
  seg = gt.copy()
  seg[seg == 40] = 1
  seg[:, :, :3] = 77
  gts = _all_formats(tmp_path, 'gt', gt)
  segs = _all_formats(tmp_path, 'seg', seg)
  scores = {}
  for fmt in FORMATS:
    result, _, _ = evaluation.evaluate(segs[fmt], gts[fmt])
    scores[fmt] = dataclasses.replace(result, inputs={})
  for fmt in FORMATS[1:]:
    assert scores[fmt] == scores['hdf5'], fmt
  assert scores['hdf5'].vi_merge > 0


def test_hdf5_reads_match_h5py(tmp_path):
  data = _labels()
  with h5py.File(tmp_path / 'x.h5', 'w') as f:
    f.create_dataset('raw', data=data).attrs['note'] = 3
  with volumes.open_volume(f'{tmp_path}/x.h5:raw') as volume:
    assert volume.attrs['note'] == 3
    np.testing.assert_array_equal(volume[5], data[5])


def test_n5_dataset_in_a_new_container_gets_the_n5_key_and_an_old_one_keeps_its_own(tmp_path):
  import z5py  # pylint: disable=g-import-not-at-top  (a test dependency)
  data = np.arange(120, dtype=np.uint64).reshape(4, 5, 6)
  with volumes.create_volume(f'n5://{tmp_path}/new.n5/seg', data.shape, np.uint64) as out:
    out[...] = data
  np.testing.assert_array_equal(z5py.File(str(tmp_path / 'new.n5'), 'r')['seg'][:], data)
  own = {'n5': '2.0.0', 'note': 'made by someone else'}
  (tmp_path / 'old.n5').mkdir()
  (tmp_path / 'old.n5' / 'attributes.json').write_text(json.dumps(own))
  with volumes.create_volume(f'n5://{tmp_path}/old.n5/seg', data.shape, np.uint64) as out:
    out[...] = data
  assert json.loads((tmp_path / 'old.n5' / 'attributes.json').read_text()) == own
  # A directory not named as a container is left without one.
  with volumes.create_volume(f'n5://{tmp_path}/plain/seg', data.shape, np.uint64) as out:
    out[...] = data
  assert not (tmp_path / 'plain' / 'attributes.json').exists()
