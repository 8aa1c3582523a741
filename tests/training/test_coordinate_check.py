"""Coordinate files are read through once before training: bad ones fail at the start."""

from __future__ import annotations

import pytest

from ffn.training import coordinate_check

import training_fixtures

SHAPES = {'blobs': (20, 30, 40)}  # zyx
SIZES = [(9, 7, 5)]  # xyz


def _check(*paths):
  return coordinate_check.check_coordinate_files([str(p) for p in paths], SHAPES, SIZES)


def test_counts_every_record_of_every_file(tmp_path):
  training_fixtures.write_coordinates(tmp_path / 'a.rec', [(20, 15, 10)] * 70000)
  training_fixtures.write_coordinates(tmp_path / 'b.rec', [(4, 3, 2), (35, 26, 17)])
  assert _check(tmp_path / 'a.rec', tmp_path / 'b.rec') == 70002


def test_empty_file(tmp_path):
  (tmp_path / 'e.rec').write_bytes(b'')
  with pytest.raises(coordinate_check.CoordinateFileError, match='e.rec holds no coordinates'):
    _check(tmp_path / 'e.rec')


def test_truncated_file_found_up_front(tmp_path):
  training_fixtures.write_coordinates(tmp_path / 'a.rec', [(20, 15, 10)] * 5000)
  blob = (tmp_path / 'a.rec').read_bytes()
  (tmp_path / 'cut.rec').write_bytes(blob[:-30])
  with pytest.raises(coordinate_check.CoordinateFileError, match='cut.rec is unreadable or trunc'):
    _check(tmp_path / 'cut.rec')


def test_unknown_volume_and_border(tmp_path):
  training_fixtures.write_coordinates(tmp_path / 'n.rec', [(20, 15, 10)], name='other')
  with pytest.raises(coordinate_check.CoordinateFileError, match="record 0 names volume 'other'"):
    _check(tmp_path / 'n.rec')
  # x = 36 + 4 reaches past the last voxel (39) for a patch 9 wide.
  training_fixtures.write_coordinates(tmp_path / 'b.rec', [(20, 15, 10), (36, 15, 10)])
  with pytest.raises(coordinate_check.CoordinateFileError, match=r'record 1 has centre \[36, 15'):
    _check(tmp_path / 'b.rec')
