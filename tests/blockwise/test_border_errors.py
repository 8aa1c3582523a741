"""Cuts and false joins at block borders on a hand-made case with one cut and two joins."""

import numpy as np

from ffn.blockwise import border_errors
from ffn.blockwise import grid as grid_lib
from ffn.blockwise import matching

# One row of two blocks along x: subvolumes x 0..24 and 16..40, owned x 0..20 and 20..40.
GRID = grid_lib.BlockGrid(start=(0, 0, 0), size=(4, 40, 40), subvolume_size=(4, 40, 24),
                          overlap=(0, 0, 8))
A, B, C, D, E, F, G, H = 1, 2, 3, 4, 5, 6, 7, 8  # Reference (single run) objects.


def _reference() -> np.ndarray:
  ref = np.zeros(GRID.size, np.uint64)
  ref[:, 0:5, 5:35] = A  # Crosses the border; stitched in two pieces.
  ref[:, 7:12, 5:35] = B  # Crosses the border; stitched whole.
  ref[:, 14:20, 5:20] = C  # C and D meet at the border: stitching joins them.
  ref[:, 14:20, 20:35] = D
  ref[:, 22:26, 2:10] = E  # E and F: one block merged them, not the border.
  ref[:, 26:30, 2:10] = F
  ref[:, 31:35, 5:35] = G  # G and H: block 0 merged them, stitching spread it to block 1's G.
  ref[:, 36:40, 5:15] = H
  return ref


def _blocks() -> dict:
  """Each block's own labels (block 0 holds E and F, and G and H, as one object)."""
  ref = _reference()
  own = {A: 1, B: 2, C: 3, D: 3, E: 5, F: 5, G: 7, H: 7}
  labels = np.vectorize(lambda v: own.get(int(v), 0), otypes=[np.uint64])(ref)
  return {(0, 0, 0): labels[:, :, 0:24], (0, 0, 1): labels[:, :, 16:40]}


def _stitched() -> np.ndarray:
  ref = _reference()
  stitched = np.zeros_like(ref)
  stitched[ref == A] = 10
  stitched[:, :, 20:][ref[:, :, 20:] == A] = 11
  stitched[ref == B] = 12
  stitched[(ref == C) | (ref == D)] = 13
  stitched[(ref == E) | (ref == F)] = 14
  stitched[(ref == G) | (ref == H)] = 16
  return stitched


def test_border_planes_are_the_owned_borders():
  assert border_errors.border_planes(GRID) == [(2, 20)]
  grid = grid_lib.BlockGrid((0, 0, 0), (150, 150, 150), (150, 99, 99), (0, 48, 48))
  assert grid.shape == (1, 2, 2)
  assert border_errors.border_planes(grid) == [(1, 75), (2, 75)]


def test_owned_fragments_are_block_keys_of_owned_voxels():
  blocks = _blocks()
  fragments = border_errors.owned_fragments(GRID, blocks.__getitem__)
  ref = _reference()
  assert fragments[0, 0, 19] == matching.pack_keys(0, np.array([1]))[0]
  assert fragments[0, 0, 20] == matching.pack_keys(1, np.array([1]))[0]
  np.testing.assert_array_equal(fragments == 0, ref == 0)


def test_one_cut_and_one_false_join():
  fragments = border_errors.owned_fragments(GRID, _blocks().__getitem__)
  errors = border_errors.find_border_errors(_reference(), _stitched(), fragments, GRID)
  assert errors.crossing_objects == 3  # A, B and G; C and D are two objects.
  assert errors.cuts == (border_errors.Cut(A, 10, 11, axis=2, position=20, contact=20),)
  assert errors.false_joins == (
      border_errors.FalseJoin(13, (C, D), (360, 360)),
      border_errors.FalseJoin(16, (G, H), (480, 160), spread=True))
  assert (errors.cut_objects, errors.joined_objects) == (1, 2)


def test_rejoined_and_unjoined_objects_are_no_errors():
  ref, stitched = _reference(), _stitched()
  stitched[stitched == 11] = 10
  stitched[ref == D] = 15
  stitched[ref == H] = 17
  fragments = border_errors.owned_fragments(GRID, _blocks().__getitem__)
  errors = border_errors.find_border_errors(ref, stitched, fragments, GRID)
  assert errors.cuts == () and errors.false_joins == ()


def test_blocks_before_stitching_cut_every_crossing_object():
  fragments = border_errors.owned_fragments(GRID, _blocks().__getitem__)
  errors = border_errors.find_border_errors(_reference(), fragments, fragments, GRID)
  assert sorted(cut.reference_id for cut in errors.cuts) == [A, B, G]
  assert errors.false_joins == ()


def test_small_pieces_and_thin_contacts_are_not_counted():
  ref, stitched = _reference(), _stitched()
  stitched[ref == H] = 17
  fragments = border_errors.owned_fragments(GRID, _blocks().__getitem__)
  errors = border_errors.find_border_errors(ref, stitched, fragments, GRID,
                                            min_voxels=361, min_contact=21)
  assert errors.cuts == () and errors.false_joins == ()


def test_a_merge_kept_inside_its_block_is_no_border_join():
  ref, stitched = _reference(), _stitched()
  stitched[:, :, 20:][ref[:, :, 20:] == G] = 18  # Block 1's G stays apart from block 0's merge.
  fragments = border_errors.owned_fragments(GRID, _blocks().__getitem__)
  errors = border_errors.find_border_errors(ref, stitched, fragments, GRID)
  assert [join.reference_ids for join in errors.false_joins] == [(C, D)]
  assert [cut.reference_id for cut in errors.cuts] == [A, G]
