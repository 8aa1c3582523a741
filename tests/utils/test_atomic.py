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


def _dead_pid() -> int:
  """The pid of a process that has exited (and been reaped)."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  proc = subprocess.Popen([sys.executable, '-c', 'pass'])
  proc.wait()
  return proc.pid


def test_symlinked_output_is_written_through(tmp_path):
  target = tmp_path / 'real.txt'
  target.write_text('old')
  link = tmp_path / 'link.txt'
  link.symlink_to(target)
  atomic.atomic_write_text(str(link), 'new')
  assert link.is_symlink() and target.read_text() == 'new'


@pytest.mark.parametrize('kind', ['fifo', 'directory'])
def test_non_regular_outputs_are_refused(tmp_path, kind):
  out = tmp_path / 'out'
  if kind == 'fifo':
    os.mkfifo(out)
  else:
    out.mkdir()
  with pytest.raises(atomic.OutputPathError, match=str(out)):
    atomic.atomic_write_text(str(out), 'x')
  assert os.path.exists(out) and not out.is_file()
  assert os.listdir(tmp_path) == ['out']


def test_stale_temporaries_of_dead_runs_are_removed(tmp_path):
  from ffn.utils import locks  # pylint: disable=g-import-not-at-top
  target = tmp_path / 'out.h5'
  host = locks.owner_tag().rpartition('-')[0]
  dead = tmp_path / f'.out.h5.{host}-{_dead_pid()}.abc.tmp.h5'
  alive = tmp_path / f'.out.h5.{locks.owner_tag()}.def.tmp.h5'
  other_host = tmp_path / '.out.h5.elsewhere-1.ghi.tmp.h5'
  unrelated = tmp_path / '.other.h5.x-1.tmp'
  for path in (dead, alive, other_host, unrelated):
    path.write_bytes(b'partial')
  atomic.atomic_write_bytes(str(target), b'whole')
  assert sorted(os.listdir(tmp_path)) == sorted(
      [alive.name, other_host.name, unrelated.name, 'out.h5'])


def test_check_output_names_unwritable_parents(tmp_path):
  a_file = tmp_path / 'f'
  a_file.write_text('x')
  with pytest.raises(atomic.OutputPathError, match='not a directory'):
    atomic.check_output(str(a_file / 'out.h5'))
  assert atomic.check_output(str(tmp_path / 'new' / 'out.h5')) == str(tmp_path / 'new' / 'out.h5')
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
