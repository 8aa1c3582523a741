"""Tests for ffn.utils.npz_to_png."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT
from ffn.utils import npz_to_png


def _segmentation(tmp_path):
  rng = np.random.default_rng(0)
  seg = rng.choice(np.array([0, 1, 2, 7, 300, 70000], np.uint64), size=(3, 5, 6))
  path = tmp_path / 'seg.npz'
  np.savez_compressed(path, segmentation=seg, origins=np.zeros(0))
  return seg, path


def test_color_slices(tmp_path):
  seg, path = _segmentation(tmp_path)
  paths = npz_to_png.npz_to_png(str(path), str(tmp_path / 'out'))
  assert [os.path.basename(p) for p in paths] == ['slice_0000.png', 'slice_0001.png',
                                                   'slice_0002.png']
  images = np.stack([np.asarray(Image.open(p)) for p in paths])
  assert images.shape == seg.shape + (3,)
  colours = {}
  for label, colour in zip(seg.ravel().tolist(), images.reshape(-1, 3).tolist()):
    assert colours.setdefault(label, tuple(colour)) == tuple(colour)
  assert colours[0] == (0, 0, 0)
  assert len(set(colours.values())) == len(colours)  # distinct ids, distinct colours
  np.testing.assert_array_equal(npz_to_png.id_colors(np.array([7])),
                                npz_to_png.id_colors(np.array([7])))


def test_gray16_round_trip(tmp_path):
  seg, path = _segmentation(tmp_path)
  seg[seg == 70000] = 65535
  np.savez(path, segmentation=seg)
  paths = npz_to_png.npz_to_png(str(path), str(tmp_path / 'g'), mode='gray16', prefix='z')
  back = np.stack([np.asarray(Image.open(p)) for p in paths])
  np.testing.assert_array_equal(back, seg)


def test_errors(tmp_path):
  seg, path = _segmentation(tmp_path)
  with pytest.raises(npz_to_png.NpzToPngError, match='65535'):
    npz_to_png.npz_to_png(str(path), str(tmp_path / 'g'), mode='gray16')
  np.savez(tmp_path / 'other.npz', labels=seg)
  with pytest.raises(npz_to_png.NpzToPngError, match='no `segmentation`'):
    npz_to_png.npz_to_png(str(tmp_path / 'other.npz'), str(tmp_path / 'g'))
  with pytest.raises(npz_to_png.NpzToPngError, match='does not exist'):
    npz_to_png.npz_to_png(str(tmp_path / 'missing.npz'), str(tmp_path / 'g'))
  with pytest.raises(npz_to_png.NpzToPngError, match='mode'):
    npz_to_png.npz_to_png(str(path), str(tmp_path / 'g'), mode='jpeg')


def test_cli(tmp_path):
  seg, path = _segmentation(tmp_path)
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      filter(None, [str(REPO_ROOT), os.environ.get('PYTHONPATH')])))
  result = subprocess.run([sys.executable, '-m', 'ffn.scripts.npz_to_png', f'--output_dir={tmp_path}/pngs',
                           str(path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 0, result.stderr
  assert len(os.listdir(tmp_path / 'pngs')) == seg.shape[0]
