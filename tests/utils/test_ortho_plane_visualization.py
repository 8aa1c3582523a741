"""Tests for ffn.utils.ortho_plane_visualization."""

from __future__ import annotations

import numpy as np
import pytest

from ffn.utils import ortho_plane_visualization as opv


def _volume(shape=(4, 5, 6)):
  """A zyx volume whose value encodes its own coordinates: z*100 + y*10 + x."""
  z, y, x = np.meshgrid(*[np.arange(s) for s in shape], indexing='ij')
  return (z * 100 + y * 10 + x).astype(np.float32)


def test_cut_ortho_planes_default_center():
  vol = _volume()
  yx, zx, zy = opv.cut_ortho_planes(vol)
  assert yx.shape == (5, 6) and zx.shape == (4, 6) and zy.shape == (4, 5)
  # Centre is shape // 2 = (2, 2, 3).
  np.testing.assert_array_equal(yx, vol[2])
  np.testing.assert_array_equal(zx, vol[:, 2, :])
  np.testing.assert_array_equal(zy, vol[:, :, 3])


def test_cut_ortho_planes_center_and_channels():
  vol = np.stack([_volume(), -_volume()], axis=-1)
  yx, zx, zy = opv.cut_ortho_planes(vol, center=(1, 4, 0))
  assert yx.shape == (5, 6, 2)
  np.testing.assert_array_equal(yx, vol[1])
  np.testing.assert_array_equal(zx, vol[:, 4])
  np.testing.assert_array_equal(zy, vol[:, :, 0])


def test_cross_hair_halves_lines_and_leaves_volume_alone():
  vol = np.ones((4, 5, 6), dtype=np.float32)
  yx, zx, zy = opv.cut_ortho_planes(vol, center=(1, 2, 3), cross_hair=True)
  assert np.all(vol == 1)
  # yx plane: row y=2 and column x=3 halved, their crossing twice.
  expected = np.ones((5, 6))
  expected[2, :] *= 0.5
  expected[:, 3] *= 0.5
  np.testing.assert_array_equal(yx, expected)
  expected = np.ones((4, 6))
  expected[1, :] *= 0.5
  expected[:, 3] *= 0.5
  np.testing.assert_array_equal(zx, expected)
  expected = np.ones((4, 5))
  expected[1, :] *= 0.5
  expected[:, 2] *= 0.5
  np.testing.assert_array_equal(zy, expected)


def test_concat_ortho_planes_layout():
  vol = _volume((4, 5, 6)) + 1  # +1 so that no value is 0, the separator colour.
  yx, zx, zy = opv.cut_ortho_planes(vol)
  out = opv.concat_ortho_planes([yx, zx, zy])
  assert out.shape == (5 + 1 + 4, 6 + 1 + 4)
  np.testing.assert_array_equal(out[:5, :6], yx)
  np.testing.assert_array_equal(out[6:, :6], zx)
  np.testing.assert_array_equal(out[:5, 7:], zy.T)
  assert np.all(out[5, :] == 0) and np.all(out[:, 6] == 0)
  assert np.all(out[6:, 7:] == 0)


def test_concat_ortho_planes_rejects_mismatched_planes():
  with pytest.raises(ValueError, match='planes'):
    opv.concat_ortho_planes([np.zeros((5, 6)), np.zeros((4, 7)), np.zeros((4, 5))])
  with pytest.raises(ValueError, match='3 planes'):
    opv.concat_ortho_planes([np.zeros((5, 6))])


def test_normalize_image_default():
  img = np.array([[-2.0, -1.0], [0.0, 4.0], [np.nan, 2.0]])
  rgb = opv.normalize_image(img)
  assert rgb.shape == (3, 2, 3) and rgb.dtype == np.float32
  np.testing.assert_allclose(rgb[0, 0], [1, 0, 0])
  np.testing.assert_allclose(rgb[0, 1], [0.5, 0, 0])
  np.testing.assert_allclose(rgb[1, 0], [0, 0, 0])
  np.testing.assert_allclose(rgb[1, 1], [0, 0, 1])
  np.testing.assert_allclose(rgb[2, 0], [0, 1, 0])
  np.testing.assert_allclose(rgb[2, 1], [0, 0, 0.5])
  assert np.isnan(img[2, 0])  # The input is not modified.


def test_normalize_image_activations():
  img = np.array([[-1.0, 0.0, 3.0]])
  rgb = opv.normalize_image(img, act='tanh')
  np.testing.assert_allclose(rgb[0, :, 0], [np.tanh(1), 0, 0], rtol=1e-6)
  np.testing.assert_allclose(rgb[0, :, 2], [0, 0, np.tanh(3)], rtol=1e-6)
  rgb = opv.normalize_image(img, act='sig')
  expected = 1 / (1 + np.exp(-img[0]))
  np.testing.assert_allclose(rgb[0, :, 0], expected, rtol=1e-6)
  np.testing.assert_allclose(rgb[0, :, 2], expected, rtol=1e-6)
  np.testing.assert_allclose(rgb[0, :, 1], 0)
  with pytest.raises(ValueError, match='act'):
    opv.normalize_image(img, act='relu')
