"""Tests for ffn.utils.atomic: outputs appear whole or not at all."""

from __future__ import annotations

import os

import pytest

from ffn.utils import atomic


def test_atomic_path_renames_on_success(tmp_path):
  target = tmp_path / 'sub' / 'out.npz'
  with atomic.atomic_path(str(target), suffix='.npz') as tmp:
    assert tmp.endswith('.npz') and os.path.dirname(tmp) == str(target.parent)
    assert not target.exists()
    with open(tmp, 'wb') as f:
      f.write(b'data')
  assert target.read_bytes() == b'data'
  assert os.listdir(target.parent) == ['out.npz']


def test_atomic_path_cleans_up_on_failure(tmp_path):
  target = tmp_path / 'out.bin'
  target.write_bytes(b'old')
  with pytest.raises(RuntimeError):
    with atomic.atomic_path(str(target)) as tmp:
      with open(tmp, 'wb') as f:
        f.write(b'half')
      raise RuntimeError('interrupted')
  assert target.read_bytes() == b'old'
  assert os.listdir(tmp_path) == ['out.bin']


def test_atomic_path_when_writer_removed_the_temp_file(tmp_path):
  with pytest.raises(FileNotFoundError):
    with atomic.atomic_path(str(tmp_path / 'x')) as tmp:
      os.remove(tmp)
  assert os.listdir(tmp_path) == []


def test_atomic_open_and_writers(tmp_path):
  with atomic.atomic_open(str(tmp_path / 'a.txt'), 'w') as f:
    f.write('hello')
  assert (tmp_path / 'a.txt').read_text() == 'hello'
  atomic.atomic_write_bytes(str(tmp_path / 'b.bin'), b'\x00\x01')
  assert (tmp_path / 'b.bin').read_bytes() == b'\x00\x01'
  atomic.atomic_write_text(str(tmp_path / 'c.txt'), 'caf\u00e9')
  assert (tmp_path / 'c.txt').read_text(encoding='utf-8') == 'caf\u00e9'
  with pytest.raises(ValueError):
    with atomic.atomic_open(str(tmp_path / 'd.txt'), 'w') as f:
      f.write('partial')
      raise ValueError('boom')
  assert sorted(os.listdir(tmp_path)) == ['a.txt', 'b.bin', 'c.txt']


def test_outputs_get_umask_permissions(tmp_path):
  if os.name != 'posix':
    pytest.skip('POSIX permissions')
  atomic.atomic_write_bytes(str(tmp_path / 'p.bin'), b'x')
  assert (tmp_path / 'p.bin').stat().st_mode & 0o777 == 0o666 & ~atomic._UMASK


def test_atomic_directory_replaces_whole_or_not_at_all(tmp_path):
  target = tmp_path / 'out'
  with atomic.atomic_directory(str(target)) as tmp:
    (tmp_path / os.path.basename(tmp) / 'a.txt').write_text('1')
    assert not target.exists()
  assert os.listdir(target) == ['a.txt']
  with pytest.raises(FileExistsError):
    with atomic.atomic_directory(str(target)):
      pass
  with pytest.raises(RuntimeError):
    with atomic.atomic_directory(str(target), overwrite=True) as tmp:
      (tmp_path / os.path.basename(tmp) / 'b.txt').write_text('2')
      raise RuntimeError('interrupted')
  assert os.listdir(target) == ['a.txt']
  with atomic.atomic_directory(str(target), overwrite=True) as tmp:
    (tmp_path / os.path.basename(tmp) / 'b.txt').write_text('2')
  assert os.listdir(target) == ['b.txt']
  assert sorted(os.listdir(tmp_path)) == ['out']
