"""Stitching rule options: the owner settling one-to-many matches, and matching near the border."""

from __future__ import annotations

import numpy as np

from ffn.blockwise import grid as grid_lib
from ffn.blockwise import matching
from ffn.blockwise import plan as plan_lib
from ffn.blockwise import stitching
from ffn.inference.io import results

import blockwise_fixtures


def _owner(shape, split_x):
  """a's block owns x < split_x, b's block the rest."""
  owner = np.full(shape, -1, dtype=np.int8)
  owner[..., :split_x] = 1
  return owner


def test_a_merge_in_the_other_blocks_region_is_not_carried_over():
  a = np.full((4, 10, 12), 3, dtype=np.uint64)  # a holds one object where b holds two...
  b = np.zeros_like(a)
  b[..., :8] = 5
  b[..., 8:] = 6  # ...and 6 lies wholly where b's block owns the voxels: b's split stands.
  assert matching.match_overlap(a, b, 10).tolist() == [[3, 5], [3, 6]]
  assert matching.match_overlap(a, b, 10, owner=_owner(a.shape, 6)).tolist() == [[3, 5]]


def test_a_split_in_the_other_blocks_region_is_rejoined():
  a = np.full((4, 10, 12), 3, dtype=np.uint64)
  b = np.zeros_like(a)
  b[..., :3] = 5  # The smaller piece lies where a's block owns the voxels: a's object stands.
  b[..., 3:] = 6
  assert matching.match_overlap(a, b, 10, owner=_owner(a.shape, 6)).tolist() == [[3, 5], [3, 6]]


def test_the_rule_is_the_same_from_the_other_side():
  a = np.zeros((4, 10, 12), dtype=np.uint64)
  a[..., :3] = 1
  a[..., 3:] = 2
  b = np.full_like(a, 7)  # b merged a's 1 and 2 where a's block owns 1.
  assert matching.match_overlap(a, b, 10, owner=_owner(a.shape, 6)).tolist() == [[2, 7]]


def _grid() -> grid_lib.BlockGrid:
  return grid_lib.BlockGrid.from_xyz(blockwise_fixtures.region(),
                                     blockwise_fixtures.SUBVOLUME_XYZ,
                                     blockwise_fixtures.OVERLAP_XYZ)


def _save(directory: str, grid: grid_lib.BlockGrid, labels: np.ndarray, merged_block) -> None:
  """Each block's crop of `labels`; `merged_block` labels objects 1 and 2 as one."""
  for index in grid.indices():
    crop = labels[grid.box(index).to_slice()].copy()
    if index == merged_block:
      crop[crop == 2] = 1
    results.save_subvolume(crop, {}, results.segmentation_path(directory, grid.corner(index)))


def _stitch(settings: stitching.StitchSettings) -> np.ndarray:
  output = settings.output()
  output.create_staged(settings.output_shape(), settings.output_chunks())
  for index in settings.grid.indices():
    stitching.match_block(settings, index)
  stitching.resolve_ids(settings)
  for index in settings.grid.indices():
    stitching.write_block(settings, index)
  output.commit()
  return blockwise_fixtures.read_h5(settings.output_volume)


def test_owner_decides_keeps_a_neighbours_merge_out(tmp_path):
  # Objects 1 and 2 lie on either side of the x border (32) inside the x overlap [24, 40).
  # The left block merged them; 2 lies where the right block owns the voxels.
  labels = np.zeros(blockwise_fixtures.SHAPE_ZYX, dtype=np.int64)
  labels[2:10, 2:12, 10:31] = 1
  labels[2:10, 2:12, 34:55] = 2
  grid = _grid()
  _save(str(tmp_path / 'seg'), grid, labels, merged_block=(0, 0, 0))
  joined = _stitch(stitching.StitchSettings(str(tmp_path / 'seg'), grid,
                                            f'{tmp_path}/default.h5:seg', 20))
  assert joined[5, 5, 20] == joined[5, 5, 50]
  settings = stitching.StitchSettings(str(tmp_path / 'seg'), grid, f'{tmp_path}/owner.h5:seg',
                                      20, owner_decides=True)
  kept = _stitch(settings)
  assert kept[5, 5, 20] != kept[5, 5, 50]
  assert len(np.unique(kept[labels == 1])) == len(np.unique(kept[labels == 2])) == 1


def test_matching_box_is_the_overlap_or_a_slab_around_the_owned_border(tmp_path):
  grid = _grid()  # x border at 32 in the overlap [24, 40); y border at 20 in [14, 26).
  whole = stitching.StitchSettings(str(tmp_path), grid, f'{tmp_path}/o.h5:seg')
  slab = stitching.StitchSettings(str(tmp_path), grid, f'{tmp_path}/o.h5:seg', match_margin=4)
  box = stitching.matching_box(whole, (0, 0, 0), (0, 0, 1))
  assert (tuple(box.start), tuple(box.end)) == ((24, 0, 0), (40, 26, 16))
  box = stitching.matching_box(slab, (0, 0, 0), (0, 0, 1))
  assert (tuple(box.start), tuple(box.end)) == ((28, 0, 0), (36, 26, 16))
  box = stitching.matching_box(slab, (0, 0, 1), (0, 1, 0))  # An edge neighbour: x and y slabs.
  assert (tuple(box.start), tuple(box.end)) == ((28, 16, 0), (36, 24, 16))
  assert whole.digest() != slab.digest()


def test_plans_keep_the_rule_options(tmp_path):
  settings = stitching.StitchSettings(str(tmp_path), _grid(), f'{tmp_path}/o.h5:seg',
                                      match_margin=3, owner_decides=True)
  loaded = plan_lib.BlockwisePlan.from_json(plan_lib.BlockwisePlan(settings).to_json()).stitch
  assert (loaded.match_margin, loaded.owner_decides) == (3, True)
  assert loaded.digest() == settings.digest()
