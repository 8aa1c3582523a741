"""The block grid, overlap matching and the stitching steps, on hand-made subvolume results."""

from __future__ import annotations

import numpy as np
import pytest

from ffn.blockwise import grid as grid_lib
from ffn.blockwise import matching
from ffn.blockwise import output as output_lib
from ffn.blockwise import stitching
from ffn.inference.io import results
from ffn.utils import bounding_box
from ffn.utils import errors
from ffn.utils import volumes

import blockwise_fixtures
import synthetic_ffn


def _grid() -> grid_lib.BlockGrid:
  return grid_lib.BlockGrid.from_xyz(blockwise_fixtures.region(),
                                     blockwise_fixtures.SUBVOLUME_XYZ,
                                     blockwise_fixtures.OVERLAP_XYZ)


def test_grid_covers_the_region_and_owned_regions_tile_it():
  box = bounding_box.BoundingBox(start=(5, 2, 1), size=(50, 30, 13))  # xyz, non-cubic
  grid = grid_lib.BlockGrid.from_xyz(box, (20, 16, 8), (6, 4, 2))
  assert grid.shape == (2, 3, 4)  # zyx: ceil((13-2)/6), ceil((30-4)/12), ceil((50-6)/14)
  owned = np.zeros(box.size_zyx, dtype=int)
  covered = np.zeros(box.size_zyx, dtype=int)
  for index in grid.indices():
    sub = grid.box(index)
    assert tuple(sub.size) == (20, 16, 8)
    assert box.contains_box(sub)
    inner = grid.owned_box(index)
    assert sub.contains_box(inner)
    local = bounding_box.BoundingBox(start=inner.start - box.start, size=inner.size)
    owned[local.to_slice()] += 1
    local = bounding_box.BoundingBox(start=sub.start - box.start, size=sub.size)
    covered[local.to_slice()] += 1
  assert np.all(owned == 1) and np.all(covered >= 1)
  # The last subvolume of each axis is moved back to end at the region's end.
  last = grid.box((1, 2, 3))
  assert tuple(last.end) == tuple(box.end)
  assert grid.name((0, 0, 1)) == 'seg-19_2_1 (xyz start 19,2,1 size 20,16,8)'


def test_overlap_voxels_go_to_the_nearer_centre():
  grid = grid_lib.BlockGrid((0, 0, 0), (1, 1, 30), (1, 1, 20), (0, 0, 10))
  assert grid.shape == (1, 1, 2)
  # Centres at 10 and 20 (x); voxel 14 (centre 14.5) is nearer the first, 15 ties to the second.
  assert grid.owned_box((0, 0, 0)).end[0] == 15
  assert grid.owned_box((0, 0, 1)).start[0] == 15


def test_match_needs_a_minimum_overlap_and_half_the_smaller_object():
  a = np.zeros((4, 10, 10), dtype=np.uint64)
  b = np.zeros_like(a)
  a[:, :, :5] = 1
  a[:, :, 5:] = 2
  b[:, :, :6] = 7  # Leaks one column into object 2 of `a`: a thin contact.
  b[:, :, 6:] = 8
  b[0, 0, 9] = 9   # A speck.
  np.testing.assert_array_equal(matching.match_overlap(a, b, 10), [[1, 7], [2, 8]])
  # The contact (40 voxels) is a fifth of object 2; the speck is below the minimum.
  # 1 and 7 share 200 voxels, 2 and 8 only 159: below a minimum of 180.
  np.testing.assert_array_equal(matching.match_overlap(a, b, 180), [[1, 7]])


def test_match_joins_both_pieces_of_an_object_split_on_one_side():
  a = np.zeros((4, 10, 12), dtype=np.uint64)
  a[:, :, :] = 3
  b = np.zeros_like(a)
  b[:, :, :8] = 5  # b split a's object 3 into 5 and 6...
  b[:, :, 8:] = 6
  # ...and 6 is not 3's largest partner, but lies wholly inside it.
  np.testing.assert_array_equal(matching.match_overlap(a, b, 10), [[3, 5], [3, 6]])


def test_match_needs_a_share_of_the_smaller_object():
  # Side a: object 1 on the left, object 2 at the bottom right, the top right
  # left unsegmented. Side b: object 6 where a has 2, and object 5 in the top
  # right, grazing object 1 in 20 voxels: 2% of object 5.
  a = np.zeros((10, 20, 20), dtype=np.uint64)
  b = np.zeros_like(a)
  a[:, :, :10] = 1
  a[:, 10:, 10:] = 2
  b[:, 10:, 10:] = 6
  b[:, :10, 10:] = 5
  b[:, :2, 9] = 5
  assert matching.match_overlap(a, b, 10).tolist() == [[2, 6]]
  fraction = 20 / np.sum(b == 5)
  assert matching.match_overlap(a, b, 10, min_overlap_fraction=fraction).tolist() == [
      [1, 5], [2, 6]]


def test_global_ids_are_dense_and_follow_the_smallest_owned_key():
  k = lambda block, local: int(matching.pack_keys(block, [local])[0])
  owned = [k(2, 1), k(0, 5), k(1, 3), k(1, 4)]
  pairs = [(k(0, 5), k(1, 9)), (k(1, 9), k(2, 1)), (k(1, 4), k(2, 7))]
  keys, ids, count = matching.global_ids(np.array(owned, dtype=np.uint64),
                                         np.array(pairs, dtype=np.uint64))
  assert count == 3
  table = dict(zip(keys.tolist(), ids.tolist()))
  # (0,5), (1,9) and (2,1) are one object even though (1,9) owns no voxel.
  assert table[k(0, 5)] == table[k(2, 1)] == 1
  assert table[k(1, 3)] == 2 and table[k(1, 4)] == 3


def _save_results(directory, grid, labels, relabel_seed=0):
  """Saves each subvolume's crop of `labels`, with ids shuffled per subvolume."""
  rng = np.random.RandomState(relabel_seed)
  for index in grid.indices():
    crop = labels[grid.box(index).to_slice()]
    ids = np.unique(crop)
    new = np.zeros(ids.max() + 1, dtype=np.int64)
    new[ids[ids > 0]] = rng.permutation(1000)[:np.count_nonzero(ids)] + 1
    results.save_subvolume(new[crop], {}, results.segmentation_path(directory, grid.corner(index)))


def _stitch(settings):
  """The stitching steps in this process, in dependency order; returns the output."""
  output = settings.output()
  output.create_staged(settings.output_shape(), settings.output_chunks())
  for index in settings.grid.indices():
    stitching.match_block(settings, index)
  stats = stitching.resolve_ids(settings)
  for index in settings.grid.indices():
    stitching.write_block(settings, index)
  output.commit()
  return stats


def _same_up_to_relabelling(a: np.ndarray, b: np.ndarray) -> bool:
  pairs = set(zip(a.ravel().tolist(), b.ravel().tolist()))
  return (len({x for x, _ in pairs}) == len(pairs) == len({y for _, y in pairs})
          and (0, 0) in pairs)


def test_objects_across_borders_get_one_id_each(tmp_path):
  _, labels = synthetic_ffn.blob_volume(blockwise_fixtures.SHAPE_ZYX, blockwise_fixtures.blobs())
  grid = _grid()
  _save_results(str(tmp_path / 'seg'), grid, labels)
  spec = f'{tmp_path}/out.h5:seg'
  settings = stitching.StitchSettings(str(tmp_path / 'seg'), grid, spec, min_overlap_size=20)
  assert stitching.missing_results(settings) == []
  stats = _stitch(settings)
  result = blockwise_fixtures.read_h5(spec)
  assert result.dtype == np.uint64 and result.shape == labels.shape
  assert _same_up_to_relabelling(result, labels)
  assert stats['objects'] == 6 and stats['fragments'] > 6
  np.testing.assert_array_equal(np.unique(result), np.arange(7))


def test_touching_objects_are_not_merged_across_a_border(tmp_path):
  # Two objects meet face to face at x = 30, inside the x overlap [24, 40); the right
  # block's segmentation of the left one leaks 2 voxels over the contact.
  labels = np.zeros(blockwise_fixtures.SHAPE_ZYX, dtype=np.int64)
  labels[2:20, 2:12, 10:30] = 1
  labels[2:20, 2:12, 30:55] = 2
  grid = _grid()
  _save_results(str(tmp_path / 'seg'), grid, labels)
  right = (0, 0, 1)
  path = results.segmentation_path(str(tmp_path / 'seg'), grid.corner(right))
  leaky, _ = results.load_segmentation(str(tmp_path / 'seg'), grid.corner(right), split_cc=False)
  left_id = leaky[5, 5, 0]  # Local x 0 is global x 24: object 1.
  leaky[2:20, 2:12, 6:8] = left_id
  results.save_subvolume(leaky, {}, path)
  spec = f'{tmp_path}/out.h5:seg'
  _stitch(stitching.StitchSettings(str(tmp_path / 'seg'), grid, spec, min_overlap_size=20))
  result = blockwise_fixtures.read_h5(spec)
  assert len(np.unique(result[labels == 1])) == 1
  assert len(np.unique(result[labels == 2])) == 1
  assert result[5, 5, 20] != result[5, 5, 50]


@pytest.mark.parametrize('form', ['zarr', 'n5', 'precomputed'])
def test_tensorstore_outputs_appear_only_on_commit(tmp_path, form):
  _, labels = synthetic_ffn.blob_volume(blockwise_fixtures.SHAPE_ZYX, blockwise_fixtures.blobs())
  grid = _grid()
  _save_results(str(tmp_path / 'seg'), grid, labels)
  final = tmp_path / 'out'
  settings = stitching.StitchSettings(str(tmp_path / 'seg'), grid, f'{form}://{final}', 20)
  output = settings.output()
  output.create_staged(settings.output_shape(), settings.output_chunks())
  assert not final.exists() and not output.exists()
  _stitch(settings)
  assert output.exists() and not (tmp_path / '.out.partial').exists()
  assert _same_up_to_relabelling(volumes.read_volume(f'{form}://{final}'), labels)


def test_n5_output_inside_a_container_is_read_by_z5py(tmp_path):
  import z5py  # pylint: disable=g-import-not-at-top  (a test dependency)
  _, labels = synthetic_ffn.blob_volume(blockwise_fixtures.SHAPE_ZYX, blockwise_fixtures.blobs())
  grid = _grid()
  _save_results(str(tmp_path / 'seg'), grid, labels)
  container = tmp_path / 'out.n5'  # Not there yet: made for the dataset.
  _stitch(stitching.StitchSettings(str(tmp_path / 'seg'), grid,
                                   f'n5://{container}/segmentation', 20,
                                   voxel_size_xyz=(8, 8, 30)))
  dataset = z5py.File(str(container), 'r')['segmentation']
  assert dataset.shape == labels.shape  # z5py reads zyx, as our arrays are.
  assert _same_up_to_relabelling(dataset[:], labels)


def test_bad_output_specs(tmp_path):
  with pytest.raises(errors.FFNError, match='no dataset'):
    output_lib.StitchedOutput(str(tmp_path / 'out.h5'), str(tmp_path))
  with pytest.raises(errors.FFNError, match='not valid JSON'):
    output_lib.StitchedOutput('{"driver": zarr', str(tmp_path))
  with pytest.raises(errors.FFNError, match='must be a local directory'):
    output_lib.StitchedOutput('{"driver": "neuroglancer_precomputed", "kvstore": "gs://b/seg"}',
                              str(tmp_path))


@pytest.mark.parametrize('form', ['zarr', 'zarr3', 'n5', 'precomputed', 'hdf5'])
def test_stitched_output_records_its_geometry(tmp_path, form):
  import json  # pylint: disable=g-import-not-at-top
  _, labels = synthetic_ffn.blob_volume(blockwise_fixtures.SHAPE_ZYX, blockwise_fixtures.blobs())
  grid = _grid()
  _save_results(str(tmp_path / 'seg'), grid, labels)
  final = tmp_path / 'out'
  spec = f'{final}.h5:seg' if form == 'hdf5' else f'{form}://{final}'
  settings = stitching.StitchSettings(str(tmp_path / 'seg'), grid, spec, 20,
                                      voxel_size_xyz=(8, 8, 30))
  _stitch(settings)
  volume = volumes.open_volume(spec)
  assert volume.voxel_size_xyz() == (8.0, 8.0, 30.0)
  assert _same_up_to_relabelling(volume[...], labels)
  if form == 'zarr3':
    import zarr  # pylint: disable=g-import-not-at-top
    array = zarr.open_array(str(final), mode='r')
    assert array.metadata.dimension_names == ('z', 'y', 'x') and array.compressors
    assert array.attrs['voxel_size'] == [30, 8, 8] and array.attrs['units'] == ['nm'] * 3
  if form == 'zarr':
    from funlib.persistence import open_ds  # pylint: disable=g-import-not-at-top
    ds = open_ds(str(final))
    assert tuple(ds.voxel_size) == (30, 8, 8) and tuple(ds.offset) == (0, 0, 0)
    assert json.loads((final / '.zattrs').read_text())['_ARRAY_DIMENSIONS'] == ['z', 'y', 'x']


def test_plan_keeps_the_voxel_size_out_of_the_digest(tmp_path):
  from ffn.blockwise import plan as plan_lib  # pylint: disable=g-import-not-at-top
  grid = _grid()
  plain = stitching.StitchSettings(str(tmp_path), grid, f'zarr://{tmp_path}/o', 20)
  sized = stitching.StitchSettings(str(tmp_path), grid, f'zarr://{tmp_path}/o', 20,
                                   voxel_size_xyz=(8, 8, 30))
  # A voxel size added on a rerun keeps the done blocks.
  assert plain.digest() == sized.digest()
  plan = plan_lib.BlockwisePlan(sized, None)
  assert plan_lib.BlockwisePlan.from_json(plan.to_json()).stitch.voxel_size_xyz == (8, 8, 30)
