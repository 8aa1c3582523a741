"""Tests for ffn.utils.png_to_h5."""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT
from ffn.utils import png_to_h5


def _write_slices(directory, names, shape=(5, 7), mode=None, seed=0):
  rng = np.random.default_rng(seed)
  slices = {}
  for name in names:
    data = rng.integers(0, 256, size=shape, dtype=np.uint8)
    Image.fromarray(data, mode=mode).save(directory / name)
    slices[name] = data
  return slices


def test_natural_order():
  names = ['img10.png', 'img2.png', 'img1.png', 'img_b.png', 'img_a.png']
  assert sorted(names, key=png_to_h5.natural_sort_key) == [
      'img1.png', 'img2.png', 'img10.png', 'img_a.png', 'img_b.png']


def test_stack_in_numeric_order(tmp_path):
  slices = _write_slices(tmp_path, ['s10.png', 's2.png', 's1.png'])
  out = tmp_path / 'out.h5'
  shape = png_to_h5.png_to_h5(str(tmp_path), str(out))
  assert shape == (3, 5, 7)
  with h5py.File(out, 'r') as f:
    ds = f['raw']
    assert ds.compression == 'gzip' and ds.dtype == np.uint8
    np.testing.assert_array_equal(ds[...], np.stack([slices[n] for n in
                                                     ['s1.png', 's2.png', 's10.png']]))


def test_rgb_slices_keep_channels(tmp_path):
  slices = _write_slices(tmp_path, ['a1.png', 'a2.png'], shape=(4, 6, 3))
  png_to_h5.png_to_h5(str(tmp_path), str(tmp_path / 'o.h5'), dataset='img')
  with h5py.File(tmp_path / 'o.h5', 'r') as f:
    np.testing.assert_array_equal(f['img'][...], np.stack([slices['a1.png'], slices['a2.png']]))


def test_mismatched_and_missing_slices(tmp_path):
  _write_slices(tmp_path, ['a1.png'], shape=(4, 6))
  _write_slices(tmp_path, ['a2.png'], shape=(4, 5))
  with pytest.raises(png_to_h5.PngStackError, match='a2.png'):
    png_to_h5.png_to_h5(str(tmp_path), str(tmp_path / 'o.h5'))
  assert not (tmp_path / 'o.h5').exists()
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(png_to_h5.PngStackError, match='no files'):
    png_to_h5.png_to_h5(str(empty), str(tmp_path / 'o.h5'))


def test_cli_from_the_slice_directory(tmp_path):
  slices = _write_slices(tmp_path, ['z3.png', 'z20.png'])
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      filter(None, [str(REPO_ROOT), os.environ.get('PYTHONPATH')])))
  result = subprocess.run([sys.executable, '-m', 'ffn.scripts.png_to_h5', 'stack.h5'],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  with h5py.File(tmp_path / 'stack.h5', 'r') as f:
    np.testing.assert_array_equal(f['raw'][...], np.stack([slices['z3.png'], slices['z20.png']]))
  result = subprocess.run([sys.executable, '-m', 'ffn.scripts.png_to_h5', '--input_dir=nowhere',
                           'x.h5'], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
  assert result.returncode != 0 and 'nowhere' in result.stderr
  assert not (tmp_path / 'x.h5').exists()
