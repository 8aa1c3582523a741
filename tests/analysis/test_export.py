"""Tests for ffn.analysis.export and export_segmentation.py: round trips, geometry, bad input."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import h5py
import numpy as np
import pytest

from ffn.analysis import export

CHUNKED = [('hdf5', 'out.h5'), ('zarr', 'out.zarr'), ('n5', 'out.n5'),
           ('precomputed', 'out_precomputed')]
GEOMETRY = export.Geometry(voxel_size_xyz=(8, 8, 30), offset_xyz=None)


@pytest.fixture
def results(tmp_path):
  """Two 5x6x7 (zyx) result subvolumes side by side in x, at xyz corners (30,20,10), (37,20,10)."""
  from ffn.inference.io import results  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  a = rng.integers(0, 4, (5, 6, 7)).astype(np.uint8)
  b = rng.integers(0, 4, (5, 6, 7)).astype(np.uint8)
  directory = str(tmp_path / 'res')
  results.save_subvolume(a, {}, results.segmentation_path(directory, (10, 20, 30)))
  results.save_subvolume(b, {}, results.segmentation_path(directory, (10, 20, 37)))
  # Ids of the second subvolume come after the first's.
  shifted_b = np.where(b > 0, b.astype(np.uint64) + np.uint64(a.max()), 0)
  expected = np.concatenate([a.astype(np.uint64), shifted_b], axis=2)
  return directory, expected


def _leftovers(directory) -> list[str]:
  """Temporary names left beside the outputs."""
  return [p for p in os.listdir(directory) if p.startswith('.')]


@pytest.mark.parametrize('output_format,name', CHUNKED)
def test_results_round_trip(tmp_path, results, output_format, name):
  directory, expected = results
  source = export.ResultVolumes(directory, split_cc=False)
  out = str(tmp_path / name)
  # A chunk size that does not divide the volume: pieces straddle chunks.
  export.export(source, out, output_format, chunk_xyz=(4, 4, 3),
                geometry=export.Geometry(voxel_size_xyz=(8, 8, 30), offset_xyz=None))
  data, geometry = export.read_export(out, output_format)
  assert data.shape == (5, 6, 14)
  np.testing.assert_array_equal(data, expected)
  assert geometry.voxel_size_xyz == (8.0, 8.0, 30.0)
  assert geometry.offset_xyz == (30, 20, 10)
  assert not _leftovers(tmp_path)


def test_format_specific_geometry_records(tmp_path, results):
  directory, _ = results
  source = export.ResultVolumes(directory, split_cc=False)
  geometry = export.Geometry(voxel_size_xyz=(4, 5, 40), offset_xyz=None)
  export.export(source, str(tmp_path / 'o.h5'), geometry=geometry)
  with h5py.File(tmp_path / 'o.h5') as f:
    attrs = f['segmentation'].attrs
    np.testing.assert_array_equal(attrs['resolution'], [40, 5, 4])  # CREMI: zyx nm.
    np.testing.assert_array_equal(attrs['offset'], [400, 100, 120])
  export.export(source, str(tmp_path / 'o.n5'), geometry=geometry)
  attrs = json.loads((tmp_path / 'o.n5' / 'segmentation' / 'attributes.json').read_text())
  assert attrs['dimensions'] == [14, 6, 5]  # N5 lists x first.
  assert attrs['resolution'] == [4, 5, 40] and attrs['axes'] == ['x', 'y', 'z']
  assert attrs['pixelResolution'] == {'dimensions': [4, 5, 40], 'unit': 'nm'}
  assert attrs['offset'] == [120, 100, 400]  # xyz, nm.
  assert json.loads((tmp_path / 'o.n5' / 'attributes.json').read_text()) == {'n5': '2.0.0'}
  export.export(source, str(tmp_path / 'o.zarr'), geometry=geometry)
  array = tmp_path / 'o.zarr' / 'segmentation'
  assert json.loads((array / '.zarray').read_text())['shape'] == [5, 6, 14]
  assert json.loads((array / '.zarray').read_text())['compressor']['id'] == 'gzip'
  [multiscale] = json.loads((tmp_path / 'o.zarr' / '.zattrs').read_text())['multiscales']
  assert multiscale['version'] == '0.4'
  assert [a['unit'] for a in multiscale['axes']] == ['nanometer'] * 3
  assert multiscale['datasets'] == [{'path': 'segmentation', 'coordinateTransformations': [
      {'type': 'scale', 'scale': [40, 5, 4]}, {'type': 'translation',
                                               'translation': [400, 100, 120]}]}]
  export.export(source, str(tmp_path / 'o3.zarr'), geometry=geometry, zarr_format=3)
  meta = json.loads((tmp_path / 'o3.zarr' / 'segmentation' / 'zarr.json').read_text())
  assert meta['dimension_names'] == ['z', 'y', 'x']
  assert [c['name'] for c in meta['codecs']] == ['bytes', 'gzip']
  group = json.loads((tmp_path / 'o3.zarr' / 'zarr.json').read_text())
  assert group['node_type'] == 'group' and group['attributes']['ome']['version'] == '0.5'
  export.export(source, str(tmp_path / 'pc'), 'precomputed', geometry=geometry)
  info = json.loads((tmp_path / 'pc' / 'info').read_text())
  assert info['type'] == 'segmentation'
  [scale] = info['scales']
  assert scale['encoding'] == 'compressed_segmentation'
  assert scale['voxel_offset'] == [30, 20, 10] and scale['size'] == [14, 6, 5]


def test_one_corner_and_volume_spec(tmp_path, results):
  directory, expected = results
  source = export.ResultVolumes(directory, corners_xyz=[(37, 20, 10)], split_cc=False)
  export.export(source, str(tmp_path / 'one.zarr'))
  data, geometry = export.read_export(str(tmp_path / 'one.zarr'))
  # Alone, the second subvolume keeps its own ids.
  second = expected[..., 7:]
  np.testing.assert_array_equal(data, np.where(second > 0, second - expected[..., :7].max(), 0))
  assert geometry.offset_xyz == (37, 20, 10)

  volume = np.arange(7 * 9 * 11, dtype=np.int32).reshape(7, 9, 11)
  with h5py.File(tmp_path / 'vol.h5', 'w') as f:
    f['labels'] = volume
  for output_format, name in CHUNKED:
    out = str(tmp_path / ('vol_' + name))
    # Slabs of 3 z-slices: the last slab is short.
    export.export(f'{tmp_path}/vol.h5:labels', out, output_format, chunk_xyz=(5, 4, 3))
    data, geometry = export.read_export(out, output_format)
    np.testing.assert_array_equal(data, volume)
    assert geometry == export.Geometry((1.0, 1.0, 1.0), (0, 0, 0))


def test_volume_is_streamed_in_slabs(tmp_path, monkeypatch):
  volume = np.ones((10, 4, 4), dtype=np.uint16)
  with h5py.File(tmp_path / 'vol.h5', 'w') as f:
    f['labels'] = volume
  seen = []
  original = export._logged

  def spy(pieces, origin):
    for block, box in original(pieces, origin):
      seen.append(block.shape)
      yield block, box
  monkeypatch.setattr(export, '_logged', spy)
  export.export(f'{tmp_path}/vol.h5:labels', str(tmp_path / 'v.zarr'), chunk_xyz=(4, 4, 4))
  assert seen == [(4, 4, 4), (4, 4, 4), (2, 4, 4)]


def test_png_slices(tmp_path, results):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  directory, expected = results
  out = tmp_path / 'pngs'
  export.export(export.ResultVolumes(directory, split_cc=False), str(out), 'png',
                png_mode='gray16')
  pngs = sorted(p for p in os.listdir(out) if p.endswith('.png'))
  assert pngs == [f'slice_{z:04d}.png' for z in range(expected.shape[0])]
  for z, name in enumerate(pngs):
    np.testing.assert_array_equal(np.asarray(Image.open(out / name)), expected[z])
  assert json.loads((out / 'geometry.json').read_text())['offset_xyz'] == [30, 20, 10]

  colour = tmp_path / 'colour'
  export.export(export.ResultVolumes(directory, split_cc=False), str(colour), 'png')
  image = np.asarray(Image.open(colour / 'slice_0002.png'))
  assert image.shape == expected.shape[1:] + (3,)
  # One colour per id, black background.
  ids = expected[2].reshape(-1)
  flat = image.reshape(-1, 3)
  assert np.all(flat[ids == 0] == 0)
  for label in np.unique(ids):
    assert len(np.unique(flat[ids == label], axis=0)) == 1
  assert len(np.unique(flat, axis=0)) == len(np.unique(ids))


def test_png_rejects_large_ids_for_gray16(tmp_path):
  with h5py.File(tmp_path / 'big.h5', 'w') as f:
    f['labels'] = np.full((2, 3, 4), 70000, dtype=np.uint32)
  with pytest.raises(export.ExportError, match='65535'):
    export.export(f'{tmp_path}/big.h5:labels', str(tmp_path / 'p'), 'png', png_mode='gray16')
  assert not (tmp_path / 'p').exists() and not _leftovers(tmp_path)


def test_bad_requests(tmp_path, results):
  directory, _ = results
  source = export.ResultVolumes(directory, split_cc=False)
  with pytest.raises(export.ExportError, match="unknown output format 'tiff'"):
    export.export(source, str(tmp_path / 'x.tif'), 'tiff')
  with pytest.raises(export.ExportError, match='extension'):
    export.export(source, str(tmp_path / 'x.tif'))
  (tmp_path / 'exists.zarr').mkdir()
  (tmp_path / 'exists.zarr' / 'keep').write_text('mine')
  with pytest.raises(export.ExportError, match='exists'):
    export.export(source, str(tmp_path / 'exists.zarr'))
  assert (tmp_path / 'exists.zarr' / 'keep').read_text() == 'mine'
  with pytest.raises(export.ExportError, match=r'corner \(0, 0, 0\)'):
    export.export(export.ResultVolumes(directory, corners_xyz=[(0, 0, 0)]),
                  str(tmp_path / 'y.zarr'))
  with pytest.raises(export.ExportError, match='does not exist'):
    export.export(export.ResultVolumes(str(tmp_path / 'nothing')), str(tmp_path / 'y.zarr'))
  with h5py.File(tmp_path / 'float.h5', 'w') as f:
    f['image'] = np.zeros((2, 3, 4), np.float32)
  with pytest.raises(export.ExportError, match='dtype float32'):
    export.export(f'{tmp_path}/float.h5:image', str(tmp_path / 'pc'), 'precomputed')
  assert not (tmp_path / 'y.zarr').exists() and not (tmp_path / 'pc').exists()
  assert not _leftovers(tmp_path)


def test_failure_leaves_nothing_and_overwrite_replaces(tmp_path, results, monkeypatch):
  directory, expected = results
  source = export.ResultVolumes(directory, split_cc=False)
  out = tmp_path / 'o.zarr'
  export.export(source, str(out), chunk_xyz=(4, 4, 4))
  old_files = sorted(os.listdir(out))

  def broken(pieces, origin):
    for i, piece in enumerate(pieces):
      if i == 1:
        raise RuntimeError('disk full')
      yield piece
  monkeypatch.setattr(export, '_logged', broken)
  for output_format, name in CHUNKED:
    target = tmp_path / ('broken_' + name)
    with pytest.raises(RuntimeError, match='disk full'):
      export.export(source, str(target), output_format)
    assert not target.exists()
  with pytest.raises(RuntimeError, match='disk full'):
    export.export(source, str(out), overwrite=True)
  assert sorted(os.listdir(out)) == old_files  # The old export is untouched.
  assert not _leftovers(tmp_path)
  monkeypatch.undo()

  export.export(export.ResultVolumes(directory, corners_xyz=[(30, 20, 10)], split_cc=False),
                str(out), overwrite=True)
  data, _ = export.read_export(str(out))
  np.testing.assert_array_equal(data, expected[..., :7])
  assert not _leftovers(tmp_path)


def _run(repo_root, *args):
  return subprocess.run([sys.executable, str(repo_root / 'export_segmentation.py'), *args],
                        capture_output=True, text=True, cwd=repo_root, timeout=120)


def test_script(tmp_path, results, repo_root):
  directory, expected = results
  out = tmp_path / 'script.n5'
  proc = _run(repo_root, '--segmentation_dir', directory, '--corner', '30,20,10',
              '--corner', '37,20,10', '--split_cc=false', '--output', str(out),
              '--voxel_size', '8,8,8')
  assert proc.returncode == 0, proc.stderr
  data, geometry = export.read_export(str(out))
  np.testing.assert_array_equal(data, expected)
  assert geometry.voxel_size_xyz == (8.0, 8.0, 8.0)

  proc = _run(repo_root, '--segmentation_dir', directory, '--output', str(out))
  assert proc.returncode == 1 and 'exists' in proc.stderr and '--overwrite' in proc.stderr
  proc = _run(repo_root, '--segmentation_dir', directory, '--output', str(tmp_path / 'a.b'),
              '--output_format', 'vtk')
  assert proc.returncode == 1 and "unknown output format 'vtk'" in proc.stderr
  assert not (tmp_path / 'a.b').exists()


def _gapped_results(tmp_path):
  """Two 5x6x7 (zyx) subvolumes at xyz corners (30,20,10) and (60,20,10): 23 voxels of x apart."""
  from ffn.inference.io import results  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(1)
  a = rng.integers(0, 4, (5, 6, 7)).astype(np.uint8)
  directory = str(tmp_path / 'gapped')
  results.save_subvolume(a, {}, results.segmentation_path(directory, (10, 20, 30)))
  results.save_subvolume(a, {}, results.segmentation_path(directory, (10, 20, 60)))
  expected = np.zeros((5, 6, 37), np.uint64)
  expected[..., :7] = a
  expected[..., 30:] = np.where(a > 0, a.astype(np.uint64) + np.uint64(a.max()), 0)
  return directory, expected


@pytest.mark.parametrize('zarr_format', [2, 3])
def test_zarr_read_by_zarr_python_and_funlib(tmp_path, results, zarr_format):
  import zarr  # pylint: disable=g-import-not-at-top
  from funlib.persistence import open_ds  # pylint: disable=g-import-not-at-top
  directory, expected = results
  out = str(tmp_path / 'out.zarr')
  export.export(export.ResultVolumes(directory, split_cc=False), out, geometry=GEOMETRY,
                chunk_xyz=(4, 4, 3), zarr_format=zarr_format)
  group = zarr.open_group(out, mode='r')
  assert group.metadata.zarr_format == zarr_format
  array = group['segmentation']
  np.testing.assert_array_equal(array[...], expected)
  assert array.dtype == np.uint64 and array.compressors  # Compressed, not raw.
  if zarr_format == 3:
    assert array.metadata.dimension_names == ('z', 'y', 'x')
  ome = group.attrs['multiscales'][0] if zarr_format == 2 else group.attrs['ome']['multiscales'][0]
  assert ome['datasets'][0]['path'] == 'segmentation'
  ds = open_ds(f'{out}/segmentation')
  assert tuple(ds.voxel_size) == (30, 8, 8)
  assert tuple(ds.offset) == (300, 160, 240)  # zyx nm: corner (30,20,10) voxels.
  assert ds.axis_names == ['z', 'y', 'x'] and ds.units == ['nm', 'nm', 'nm']
  np.testing.assert_array_equal(ds[ds.roi], expected)
  # The OME-NGFF metadata, parsed by iohub's models (funlib's OME reader).
  from funlib.persistence.arrays.ome_datasets import open_ome_ds  # pylint: disable=g-import-not-at-top
  ome_ds = open_ome_ds(pathlib.Path(out), 'segmentation')
  assert tuple(ome_ds.voxel_size) == (30, 8, 8) and tuple(ome_ds.offset) == (300, 160, 240)
  assert ome_ds.units == ['nanometer'] * 3
  np.testing.assert_array_equal(ome_ds[ome_ds.roi], expected)


def test_n5_read_by_z5py_and_neuroglancer_keys(tmp_path, results):
  import z5py  # pylint: disable=g-import-not-at-top
  directory, expected = results
  out = str(tmp_path / 'out.n5')
  export.export(export.ResultVolumes(directory, split_cc=False), out, geometry=GEOMETRY,
                chunk_xyz=(4, 4, 3))
  container = z5py.File(out, 'r')
  dataset = container['segmentation']
  assert dataset.dtype == np.uint64
  # z5py gives N5 arrays zyx (it reverses N5's xyz dimension list).
  np.testing.assert_array_equal(dataset[...], expected)
  assert dataset.attrs['resolution'] == [8, 8, 30] and dataset.attrs['offset'] == [240, 160, 300]


def test_signed_labels_become_uint64_and_negatives_are_refused(tmp_path):
  volume = np.arange(60, dtype=np.int64).reshape(3, 4, 5)
  with h5py.File(tmp_path / 'vol.h5', 'w') as f:
    f['labels'] = volume
    f['negative'] = -volume
  for output_format, name in CHUNKED[1:]:
    out = str(tmp_path / name)
    export.export(f'{tmp_path}/vol.h5:labels', out, output_format)
    data, _ = export.read_export(out, output_format)
    assert data.dtype == np.uint64, output_format
    np.testing.assert_array_equal(data, volume)
    with pytest.raises(export.ExportError, match='id -59'):
      export.export(f'{tmp_path}/vol.h5:negative', out + '_neg', output_format)
    assert not os.path.exists(out + '_neg')
  export.export(f'{tmp_path}/vol.h5:labels', str(tmp_path / 'keep.h5'))
  assert export.read_export(str(tmp_path / 'keep.h5'))[0].dtype == np.int64  # HDF5 keeps it.


def test_precomputed_for_cloud_volume(tmp_path):
  from cloudvolume import CloudVolume  # pylint: disable=g-import-not-at-top
  directory, expected = _gapped_results(tmp_path)
  out = str(tmp_path / 'pc')
  export.export(export.ResultVolumes(directory, split_cc=False), out, 'precomputed',
                geometry=GEOMETRY, chunk_xyz=(4, 4, 3), downsample=2, meshes=True)
  volume = CloudVolume(f'file://{out}', mip=0)
  # Chunks between the two subvolumes were written as 0: a plain read does not raise.
  data = np.asarray(volume[:])[..., 0].transpose(2, 1, 0)
  np.testing.assert_array_equal(data, expected)
  assert list(volume.bounds.minpt) == [30, 20, 10]
  assert [list(volume.mip_resolution(m)) for m in range(3)] == [[8, 8, 30], [16, 16, 60],
                                                                 [32, 32, 120]]
  coarse = np.asarray(CloudVolume(f'file://{out}', mip=1)[:])[..., 0]
  assert coarse.shape == (19, 3, 3)
  assert set(np.unique(coarse)) <= set(np.unique(expected))

  info = json.loads((tmp_path / 'pc' / 'info').read_text())
  properties = json.loads((tmp_path / 'pc' / info['segment_properties'] / 'info').read_text())
  assert properties['@type'] == 'neuroglancer_segment_properties'
  ids, counts = np.unique(expected[expected > 0], return_counts=True)
  assert properties['inline']['ids'] == [str(i) for i in ids]
  [voxels] = properties['inline']['properties']
  assert voxels['type'] == 'number' and voxels['values'] == counts.tolist()

  mesh = volume.mesh.get(int(ids[-1]))
  mesh = mesh[int(ids[-1])] if isinstance(mesh, dict) else mesh
  # Vertices in nm of the global space, inside the second subvolume (x 60..67 voxels).
  lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
  assert lo[0] >= 60 * 8 - 1e-3 and hi[0] <= 67 * 8 + 1e-3
  assert lo[2] >= 10 * 30 - 1e-3 and hi[2] <= 15 * 30 + 1e-3
  assert len(mesh.faces) > 0


def test_format_options_are_checked(tmp_path, results):
  directory, _ = results
  source = export.ResultVolumes(directory, split_cc=False)
  with pytest.raises(export.ExportError, match='zarr format 3 given for n5'):
    export.export(source, str(tmp_path / 'x.n5'), zarr_format=3)
  with pytest.raises(export.ExportError, match='must be 2 or 3'):
    export.export(source, str(tmp_path / 'x.zarr'), zarr_format=4)
  with pytest.raises(export.ExportError, match='downsample given for zarr'):
    export.export(source, str(tmp_path / 'x.zarr'), downsample=1)
  with pytest.raises(export.ExportError, match='meshes given for hdf5'):
    export.export(source, str(tmp_path / 'x.h5'), meshes=True)
  with pytest.raises(export.ExportError, match="dataset name '../up'"):
    export.export(source, str(tmp_path / 'x.zarr'), dataset_name='../up')
  assert not [p for p in os.listdir(tmp_path) if p.startswith('x')]


def test_script_format_flags(tmp_path, results, repo_root):
  import zarr  # pylint: disable=g-import-not-at-top
  directory, expected = results
  proc = _run(repo_root, '--segmentation_dir', directory, '--split_cc=false',
              '--output', str(tmp_path / 'v3.zarr'), '--zarr_format', '3', '--voxel_size', '8,8,30')
  assert proc.returncode == 0, proc.stderr
  array = zarr.open_group(str(tmp_path / 'v3.zarr'), mode='r')['segmentation']
  assert array.metadata.zarr_format == 3
  np.testing.assert_array_equal(array[...], expected)
  proc = _run(repo_root, '--segmentation_dir', directory, '--split_cc=false',
              '--output', str(tmp_path / 'pc'), '--output_format', 'precomputed',
              '--downsample', '1', '--meshes')
  assert proc.returncode == 0, proc.stderr
  info = json.loads((tmp_path / 'pc' / 'info').read_text())
  assert len(info['scales']) == 2 and info['mesh'] == 'mesh'
  proc = _run(repo_root, '--segmentation_dir', directory, '--output', str(tmp_path / 'm.zarr'),
              '--meshes')
  assert proc.returncode == 1 and 'meshes given for zarr output' in proc.stderr
  assert 'Traceback' not in proc.stderr and not (tmp_path / 'm.zarr').exists()
