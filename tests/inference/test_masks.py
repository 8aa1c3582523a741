"""Tests of inference_masks.build_mask for every MaskConfig source."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from google.protobuf import text_format

from ffn.inference import inference_pb2
from ffn.inference.io import masks
from ffn.inference.io import masks as inference_masks
from ffn.inference.io import results
from ffn.inference.io import volumes

CORNER = (2, 3, 4)   # zyx
SIZE = (3, 4, 5)     # zyx


def _config(text: str) -> inference_pb2.MaskConfig:
  return text_format.Parse(text, inference_pb2.MaskConfig())


def _global_grids(corner, size):
  return np.meshgrid(*[np.arange(c, c + s) for c, s in zip(corner, size)], indexing='ij')


def test_coordinate_expression_uses_global_zyx():
  z, y, x = _global_grids(CORNER, SIZE)
  mask = inference_masks.build_mask([_config('coordinate_expression { expression: "x + 2 * y > z + 10" }')],
                            CORNER, SIZE)
  assert mask.dtype == bool and mask.shape == SIZE
  np.testing.assert_array_equal(mask, x + 2 * y > z + 10)
  mask = inference_masks.build_mask(
      [_config('coordinate_expression { expression: "np.logical_and(z == 3, x < 6)" }')],
      CORNER, SIZE)
  np.testing.assert_array_equal(mask, (z == 3) & (x < 6))
  # A scalar result is broadcast over the box.
  mask = inference_masks.build_mask([_config('coordinate_expression { expression: "True" }')],
                            CORNER, SIZE)
  assert mask.all()


def test_coordinate_expression_errors():
  with pytest.raises(ValueError, match='no_such_name'):
    inference_masks.build_mask([_config('coordinate_expression { expression: "no_such_name > 1" }')],
                       CORNER, SIZE)
  # Only admitted numpy functions can be called.
  with pytest.raises(ValueError, match='__import__'):
    inference_masks.build_mask(
        [_config('coordinate_expression { expression: "__import__(\'os\').getcwd()" }')],
        CORNER, SIZE)
  # Subscripts are outside the grammar (ffn/utils/expressions.py).
  with pytest.raises(ValueError, match='Subscript'):
    inference_masks.build_mask([_config('coordinate_expression { expression: "x[:, :, 0]" }')], CORNER, SIZE)


def test_image_range_values_and_inverts():
  image = np.random.default_rng(0).integers(0, 10, size=SIZE).astype(np.float32)
  mask = inference_masks.build_mask(
      [_config('image { channels { channel: 0 min_value: 2 max_value: 4 } }')],
      CORNER, SIZE, image=image)
  np.testing.assert_array_equal(mask, (image >= 2) & (image <= 4))
  # `values` takes precedence over the range.
  mask = inference_masks.build_mask(
      [_config('image { channels { channel: 0 min_value: 2 max_value: 4 values: 7 values: 1 } }')],
      CORNER, SIZE, image=image)
  np.testing.assert_array_equal(mask, (image == 7) | (image == 1))
  mask = inference_masks.build_mask(
      [_config('image { channels { channel: 0 values: 7 invert: true } }')],
      CORNER, SIZE, image=image)
  np.testing.assert_array_equal(mask, image != 7)
  mask = inference_masks.build_mask(
      [_config('image { channels { channel: 0 values: 7 } } invert: true')],
      CORNER, SIZE, image=image)
  np.testing.assert_array_equal(mask, image != 7)
  # Two channel configs are ORed; the proto defaults give the range [0, 0].
  mask = inference_masks.build_mask(
      [_config('image { channels { channel: 0 values: 7 } channels { channel: 0 } }')],
      CORNER, SIZE, image=image)
  np.testing.assert_array_equal(mask, (image == 7) | (image == 0))


def test_image_errors():
  with pytest.raises(ValueError, match='needs the image'):
    inference_masks.build_mask([_config('image { channels { channel: 0 } }')], CORNER, SIZE)
  with pytest.raises(ValueError, match='channel 1'):
    inference_masks.build_mask([_config('image { channels { channel: 1 } }')], CORNER, SIZE,
                       image=np.zeros(SIZE))
  with pytest.raises(ValueError, match='no mask source'):
    inference_masks.build_mask([_config('invert: true')], CORNER, SIZE)


def test_configs_are_ored_and_empty_is_none():
  z, y, x = _global_grids(CORNER, SIZE)
  image = (x % 2).astype(np.float32)
  mask = inference_masks.build_mask([
      _config('coordinate_expression { expression: "z == 2" }'),
      _config('image { channels { channel: 0 min_value: 1 max_value: 1 } }'),
  ], CORNER, SIZE, image=image)
  np.testing.assert_array_equal(mask, (z == 2) | (x % 2 == 1))
  assert inference_masks.build_mask([], CORNER, SIZE) is None


def _write_h5(path, data):
  with h5py.File(path, 'w') as f:
    f.create_dataset('mask', data=data)
  return f'{path}:mask'


def _padded_reference(volume_czyx, channel, corner, size):
  """The channel of `volume_czyx` over the box, with 0 outside the volume."""
  out = np.zeros(size, dtype=volume_czyx.dtype)
  for idx in np.ndindex(*size):
    g = np.add(idx, corner)
    if np.all(g >= 0) and np.all(g < volume_czyx.shape[1:]):
      out[idx] = volume_czyx[(channel,) + tuple(g)]
  return out


def test_4d_volume_mask_clipped_at_volume_edges(tmp_path):
  rng = np.random.default_rng(1)
  volume = rng.integers(1, 9, size=(2, 6, 7, 8)).astype(np.uint16)  # c, z, y, x
  spec = _write_h5(tmp_path / 'm4.h5', volume)
  corner, size = (4, 5, -1), (3, 4, 3)  # Off the high z and y sides and the low x side.
  channel_1 = _padded_reference(volume, 1, corner, size)
  channel_0 = _padded_reference(volume, 0, corner, size)

  config = _config(f'volume {{ mask {{ hdf5: "{spec}" }} channels {{ channel: 1 values: 5 values: 6 }} }}')
  mask = inference_masks.build_mask([config], corner, size)
  np.testing.assert_array_equal(mask, (channel_1 == 5) | (channel_1 == 6))
  assert mask.shape == size

  # Out-of-volume voxels read as 0, so the default [0, 0] range selects exactly them.
  config = _config(f'volume {{ mask {{ hdf5: "{spec}" }} channels {{ channel: 0 }} }}')
  mask = inference_masks.build_mask([config], corner, size)
  outside = np.ones(size, bool)
  outside[:2, :2, 1:] = False
  np.testing.assert_array_equal(mask, outside)
  assert mask.sum() == np.prod(size) - 2 * 2 * 2

  config = _config(f'volume {{ mask {{ hdf5: "{spec}" }} '
                   'channels { channel: 0 min_value: 3 max_value: 5 invert: true } } invert: true')
  mask = inference_masks.build_mask([config], corner, size)
  np.testing.assert_array_equal(mask, (channel_0 >= 3) & (channel_0 <= 5))


def test_3d_volume_mask_and_tensorstore_volume(tmp_path):
  import tensorstore as ts  # pylint: disable=g-import-not-at-top
  volume = np.random.default_rng(2).integers(0, 4, size=(5, 9, 10)).astype(np.uint8)
  spec_h5 = _write_h5(tmp_path / 'm3.h5', volume)
  ts_spec = {'driver': 'zarr', 'kvstore': {'driver': 'file', 'path': str(tmp_path / 'm.zarr')}}
  store = ts.open(ts_spec, create=True, dtype=ts.uint8, shape=volume.shape).result()
  store[...] = volume
  want = _padded_reference(volume[None], 0, CORNER, SIZE)
  want = (want >= 2) & (want <= 3)
  for source in (f'hdf5: "{spec_h5}"', f'tensorstore: {json.dumps(json.dumps(ts_spec))}'):
    config = _config(f'volume {{ mask {{ {source} }} channels {{ channel: 0 min_value: 2 max_value: 3 }} }}')
    np.testing.assert_array_equal(inference_masks.build_mask([config], CORNER, SIZE), want)


def test_volume_masks_are_opened_once(tmp_path, monkeypatch):
  spec = _write_h5(tmp_path / 'm.h5', np.ones((1, 4, 5, 6), np.uint8))
  opened = []
  real_open = volumes.decorated_volume

  def counting_open(settings):
    opened.append(settings.hdf5)
    return real_open(settings)

  monkeypatch.setattr(masks, 'decorated_volume', counting_open)
  config = _config(f'volume {{ mask {{ hdf5: "{spec}" }} channels {{ channel: 0 values: 1 }} }}')
  cache = {}
  for corner in [(0, 0, 0), (1, 1, 1), (2, 0, 3)]:
    mask = inference_masks.build_mask([config, config], corner, (2, 3, 3), mask_volume_map=cache)
    assert mask.all()
  assert opened == [spec]
  assert list(cache) == [config.volume.mask.SerializeToString()]


def test_load_segmentation_applies_mask_config(tmp_path):
  d = str(tmp_path)
  labels = np.zeros(SIZE, np.uint32)
  labels[:, :2] = 1
  labels[:, 2:] = 2
  origins = {1: results.OriginInfo((0, 0, 0), 1, 0.1), 2: results.OriginInfo((0, 3, 0), 1, 0.1)}
  results.save_subvolume(labels, origins, results.segmentation_path(d, CORNER))
  masks = text_format.Parse('masks { coordinate_expression { expression: "y < 5" } }',
                            inference_pb2.MaskConfigs())
  seg, got = results.load_segmentation(d, CORNER, split_cc=False, mask_config=masks)
  # Global y of row 0 is 3: rows 0 and 1 (y = 3, 4) are masked.
  expected = labels.astype(np.uint64)
  expected[:, :2] = 0
  np.testing.assert_array_equal(seg, expected)
  assert got == origins
