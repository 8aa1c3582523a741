"""Pickles in npz files: upstream's OriginInfo dicts load, anything that runs code is refused."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from ffn.inference.io import results
from ffn.utils import safe_pickle


class _RunsCommand:
  """Unpickling this calls os.system, which would create `marker`."""

  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return os.system, (f'touch {self.marker}',)


class _ReachesEval:
  def __reduce__(self):
    return eval, ('1 + 1',)


def _write_npz(path, **arrays):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  np.savez(path, **arrays)


def test_upstream_origins_load(tmp_path):
  origins = {4: results.OriginInfo(tuple(np.array([1, 2, 3])), np.int64(12), 0.5),
             9: results.OriginInfo((0, 0, 1), 3, np.float32(0.25))}
  path = str(tmp_path / 'a.npz')
  _write_npz(path, segmentation=np.zeros((2, 2, 2), np.uint8), origins=origins,
             overlaps={4: np.array([9])})
  with results.open_npz(path) as data:
    assert data['origins'].item() == origins
    assert isinstance(data['origins'].item()[4], results.OriginInfo)
    np.testing.assert_array_equal(data['overlaps'].item()[4], [9])


@pytest.mark.parametrize('protocol', [2, 3, 4, 5])
def test_every_protocol_of_admitted_values(protocol):
  value = {1: (np.arange(3), np.float64(2.5), {'a': [1, 2]}, {3, 4}, b'\x00\xff', 'text')}
  got = safe_pickle.loads(pickle.dumps(value, protocol=protocol))
  assert got[1][1] == 2.5 and got[1][2] == {'a': [1, 2]} and got[1][3] == {3, 4}
  assert got[1][4] == b'\x00\xff' and got[1][5] == 'text'
  np.testing.assert_array_equal(got[1][0], np.arange(3))


@pytest.mark.parametrize('payload', ['system', 'eval'])
def test_malicious_npz_is_refused_and_nothing_runs(tmp_path, payload):
  marker = tmp_path / 'marker'
  evil = _RunsCommand(marker) if payload == 'system' else _ReachesEval()
  d = str(tmp_path / 'seg')
  path = results.segmentation_path(d, (0, 0, 0))
  _write_npz(path, segmentation=np.ones((2, 2, 2), np.uint8),
             origins=np.array(evil, dtype=object))
  assert not marker.exists()
  with pytest.raises(safe_pickle.UnsafePickleError, match='not allowed') as info:
    results.load_segmentation(d, (0, 0, 0))
  assert 'seg-0_0_0.npz' in str(info.value)
  with pytest.raises(safe_pickle.UnsafePickleError):
    results.load_origins(d, (0, 0, 0))
  assert not marker.exists()


def test_corrupt_npz_is_one_clear_error(tmp_path):
  path = tmp_path / 'bad.npz'
  path.write_bytes(b'not a zip at all')
  with pytest.raises(safe_pickle.BadNpzError, match='bad.npz'):
    safe_pickle.load_npz(str(path))
  good = tmp_path / 'good.npz'
  np.savez(good, a=np.arange(1000))
  truncated = tmp_path / 'cut.npz'
  truncated.write_bytes(good.read_bytes()[:-40])
  with pytest.raises(safe_pickle.BadNpzError, match='cut.npz'):
    with safe_pickle.load_npz(str(truncated)) as data:
      data['a']  # pylint: disable=pointless-statement


def _declaring(path, shape, zip_size=None):
  """An npz whose entry header declares `shape` (and its zip directory `zip_size` bytes)."""
  import io  # pylint: disable=g-import-not-at-top
  import zipfile  # pylint: disable=g-import-not-at-top
  header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.uint8))
  header['shape'] = shape
  buf = io.BytesIO()
  np.lib.format.write_array_header_1_0(buf, header)
  size = buf.tell()
  buf.write(b'\0' * 64)
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as zf:
    with zf.open('a.npy', 'w', force_zip64=True) as f:
      f.write(buf.getvalue())
    if zip_size is not None:
      zf.filelist[0].file_size = size + zip_size
  return str(path)


def test_declared_sizes_are_checked_before_inflating(tmp_path):
  lying = _declaring(tmp_path / 'lying.npz', (10**5, 10**5, 10**5))
  with safe_pickle.load_npz(lying) as data, pytest.raises(
      safe_pickle.BadNpzError, match=r'lying.npz \(entry .a.\) is corrupt: its header declares '
      r'shape \(100000, 100000, 100000\)'):
    data['a']
  bomb = _declaring(tmp_path / 'bomb.npz', (10**4, 10**4, 10**4), zip_size=10**12)
  with safe_pickle.load_npz(bomb) as data, pytest.raises(
      safe_pickle.BadNpzError, match=r'declares 1,000,000,000,128 bytes once inflated, more '
      'than the'):
    data['a']
  honest = str(tmp_path / 'honest.npz')
  np.savez(honest, a=np.arange(1000))
  with safe_pickle.load_npz(honest, max_bytes=100) as data, pytest.raises(
      safe_pickle.BadNpzError, match='more than the 100 bytes allowed'):
    data['a']
  with safe_pickle.load_npz(honest) as data:
    np.testing.assert_array_equal(data['a'], np.arange(1000))
