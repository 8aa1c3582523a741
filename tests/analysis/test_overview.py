"""Tests for ffn.analysis.overview."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ffn.analysis import overview


def test_label_colors_are_stable_distinct_and_coloured():
  ids = np.arange(1, 201)
  colours = overview.label_colors(ids)
  assert colours.shape == (200, 3) and colours.dtype == np.float32
  assert colours.min() >= 0 and colours.max() <= 1
  np.testing.assert_array_equal(colours, overview.label_colors(ids))
  # Saturated: no colour is grey.
  assert np.all(colours.max(axis=1) - colours.min(axis=1) > 0.3)
  # Neighbouring ids look different.
  assert np.all(np.abs(np.diff(colours, axis=0)).sum(axis=1) > 0.05)
  assert len({tuple(np.round(c, 3)) for c in colours}) == 200


def test_overview_size_and_colours(tmp_path):
  shape = (6, 10, 14)  # zyx, non-cubic.
  image = np.full(shape, 100, dtype=np.uint8)
  labels = np.zeros(shape, dtype=np.uint64)
  labels[:, :5, :7] = 42  # One segment in the low-y, low-x corner.
  path = tmp_path / 'ov.png'
  rgb = overview.write_overview_png(str(path), image, [labels], center_zyx=(3, 2, 3), alpha=0.5)
  assert rgb.shape == (10 + 1 + 6, 14 + 1 + 6, 3)
  read = np.asarray(Image.open(path).convert('RGB'))
  np.testing.assert_array_equal(read, rgb)

  expected = np.rint(0.5 * 100 + 0.5 * 255 * overview.label_colors([42])[0]).astype(np.uint8)
  # yx panel (top-left): the segment where y < 5 and x < 7, plain grey elsewhere.
  np.testing.assert_array_equal(rgb[:5, :7].reshape(-1, 3), np.tile(expected, (35, 1)))
  assert np.all(rgb[5:10, :14] == 100) and np.all(rgb[:10, 7:14] == 100)
  # zx panel (bottom-left, cut at y=2): the segment fills x < 7 for every z.
  np.testing.assert_array_equal(rgb[11:, :7].reshape(-1, 3), np.tile(expected, (42, 1)))
  assert np.all(rgb[11:, 7:14] == 100)
  # zy panel (top-right, transposed, cut at x=3): rows are y, columns z.
  np.testing.assert_array_equal(rgb[:5, 15:].reshape(-1, 3), np.tile(expected, (30, 1)))
  assert np.all(rgb[5:10, 15:] == 100)


def test_overview_panels_side_by_side_without_image():
  labels = np.ones((4, 5, 6), dtype=np.int64)
  other = np.zeros((4, 5, 6), dtype=np.int64)
  rgb = overview.render_overview(None, [labels, other], zoom=2)
  panel_w = (6 + 1 + 4) * 2
  assert rgb.shape == ((5 + 1 + 4) * 2, 2 * panel_w + 4 * 2, 3)
  assert np.all(rgb[:, panel_w:panel_w + 8] == 255)  # The white gap.
  right = rgb[:10, panel_w + 8:panel_w + 8 + 12]
  assert np.all(right == 96)  # No segments: flat grey.
  left = rgb[:10, :12]
  assert np.all(left.max(axis=-1) != left.min(axis=-1))  # Coloured.


def test_overview_stretches_float_images_and_checks_inputs():
  image = np.linspace(-1, 1, 4 * 5 * 6).reshape(4, 5, 6)
  rgb = overview.render_overview(image, [np.zeros((4, 5, 6), np.int32)])
  grey = rgb[:5, :6, 0]
  assert grey.min() < grey.max() and np.all(rgb[:5, :6, 0] == rgb[:5, :6, 2])
  with pytest.raises(ValueError, match='shape'):
    overview.render_overview(image, [np.zeros((4, 5, 7), np.int32)])
  with pytest.raises(ValueError, match='outside'):
    overview.render_overview(None, [np.zeros((4, 5, 6))], center_zyx=(4, 0, 0))
  png = overview.png_bytes(rgb)
  assert Image.open(io.BytesIO(png)).size == (rgb.shape[1], rgb.shape[0])


def test_titles_and_palette(tmp_path):
  labels = np.zeros((80, 30, 40), dtype=np.int64)
  labels[:, 10:20, 10:30] = 3
  plain = overview.render_overview(None, [labels])
  titled = overview.render_overview(None, [labels], titles=['result'], origin_xyz=(5, 6, 7))
  corner = (slice(31, None), slice(41, None))  # Right of the zx plane, below the zy plane.
  assert np.all(plain[corner] == 0)
  assert np.count_nonzero(titled[corner]) > 50
  # Everything outside the caption corner is unchanged.
  outside = np.ones(plain.shape[:2], dtype=bool)
  outside[corner] = False
  np.testing.assert_array_equal(titled[outside], plain[outside])
  with pytest.raises(ValueError, match='titles'):
    overview.render_overview(None, [labels], titles=['a', 'b'])
  # A corner too small for the text stays empty rather than clipped.
  small = overview.render_overview(None, [labels[:8]], titles=['result'])
  assert np.all(small[31:, 41:] == 0)

  path = tmp_path / 'p.png'
  rgb = overview.write_overview_png(str(path), None, [labels], palette=True)
  read = Image.open(path)
  assert read.mode == 'P' and read.size == (rgb.shape[1], rgb.shape[0])
  # Few colours here, so the palette keeps them exactly.
  np.testing.assert_array_equal(np.asarray(read.convert('RGB')), rgb)
