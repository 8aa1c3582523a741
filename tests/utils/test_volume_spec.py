"""Tests for ffn.utils.volume_spec: POSIX, Windows and '@' forms, malformed specs, opening."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ffn.utils import volume_spec
from ffn.utils.volume_spec import VolumeSpec, VolumeSpecError, parse_volume_spec


@pytest.mark.parametrize('spec,expected', [
    ('groundtruth.h5:stack', VolumeSpec('groundtruth.h5', 'stack')),
    ('third_party/x/groundtruth.h5:stack', VolumeSpec('third_party/x/groundtruth.h5', 'stack')),
    ('/abs/path/vol.h5:raw', VolumeSpec('/abs/path/vol.h5', 'raw')),
    ('validation1:/abs/af.h5:af', VolumeSpec('/abs/af.h5', 'af', 'validation1')),
    ('validation1:rel/af.h5:af', VolumeSpec('rel/af.h5', 'af', 'validation1')),
    ('C:\\data\\vol.h5:raw', VolumeSpec('C:\\data\\vol.h5', 'raw')),
    ('c:/data/vol.h5:raw', VolumeSpec('c:/data/vol.h5', 'raw')),
    ('validation1:C:\\data\\af.h5:af', VolumeSpec('C:\\data\\af.h5', 'af', 'validation1')),
    ('validation1@C:\\data\\af.h5@af', VolumeSpec('C:\\data\\af.h5', 'af', 'validation1')),
    ('C:\\data\\af.h5@af', VolumeSpec('C:\\data\\af.h5', 'af')),
    ('  vol.h5:raw  ', VolumeSpec('vol.h5', 'raw')),
])
def test_parses(spec, expected):
  assert parse_volume_spec(spec) == expected


def test_str_round_trip():
  for text in ['vol.h5:raw', 'name:/a/b.h5:ds']:
    assert str(parse_volume_spec(text)) == text


def test_with_name_rules():
  assert parse_volume_spec('v:/tmp/a.h5:af', with_name=True) == VolumeSpec('/tmp/a.h5', 'af', 'v')
  assert parse_volume_spec('C:\\data\\a.h5:af') == VolumeSpec('C:\\data\\a.h5', 'af')
  assert parse_volume_spec('name:a.h5:af', with_name=False) == VolumeSpec('name:a.h5', 'af')
  with pytest.raises(VolumeSpecError, match='no volume name'):
    parse_volume_spec('a.h5:af', with_name=True)
  with pytest.raises(VolumeSpecError, match='no volume name'):
    parse_volume_spec('C:\\data\\a.h5:af', with_name=True)


@pytest.mark.parametrize('spec,match', [
    ('', 'empty'), ('   ', 'empty'), ('vol.h5', 'no dataset'), ('C:\\data\\vol.h5', 'no dataset'),
    ('vol.h5:', 'malformed'), (':raw', 'malformed'), ('name@@raw', 'empty path'),
    ('a/b:c.h5:raw', 'malformed name'),
])
def test_malformed(spec, match):
  with pytest.raises(VolumeSpecError, match=match) as info:
    parse_volume_spec(spec)
  assert isinstance(info.value, ValueError)


def test_named_specs():
  specs = volume_spec.parse_named_volume_specs('a:x.h5:raw,b@C:\\y.h5@raw')
  assert specs == {'a': VolumeSpec('x.h5', 'raw', 'a'), 'b': VolumeSpec('C:\\y.h5', 'raw', 'b')}
  assert list(volume_spec.parse_named_volume_specs(['a:x.h5:raw'])) == ['a']
  with pytest.raises(VolumeSpecError, match='twice'):
    volume_spec.parse_named_volume_specs(['a:x.h5:raw', 'a:y.h5:raw'])
  with pytest.raises(VolumeSpecError, match='no volume specs'):
    volume_spec.parse_named_volume_specs([])


def test_open_volume(tmp_path):
  path = tmp_path / 'v.h5'
  with h5py.File(path, 'w') as f:
    f.create_dataset('raw', data=np.arange(24).reshape(2, 3, 4))
  ds = volume_spec.open_volume(f'{path}:raw')
  try:
    assert ds.shape == (2, 3, 4) and ds[1, 2, 3] == 23
  finally:
    ds.file.close()
  with pytest.raises(VolumeSpecError, match='does not exist'):
    volume_spec.open_volume(f'{tmp_path}/missing.h5:raw')
  with pytest.raises(VolumeSpecError, match=r"'nope' not found.*\['raw'\]"):
    volume_spec.open_volume(f'{path}:nope')
  (tmp_path / 'text.h5').write_text('not hdf5')
  with pytest.raises(VolumeSpecError, match='cannot open'):
    volume_spec.open_volume(f'{tmp_path}/text.h5:raw')
