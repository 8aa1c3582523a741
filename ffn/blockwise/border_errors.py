"""Errors a blockwise result makes at its block borders, counted against a reference (no I/O).

The reference is a segmentation of the same region without blocks (a single
run, or the groundtruth). Borders are the planes between the blocks' owned
regions (what each block writes to the stitched volume); they cross the whole
region, since owned regions are cut axis by axis.

  cut         a reference object that holds both voxels of at least
              `min_contact` voxel pairs across a border, where the stitched
              volume has two different objects on the two sides, each sharing
              at least `min_voxels` voxels with the reference object: the two
              pieces were not rejoined.
  false join  a stitched object that shares at least `min_voxels` voxels with
              each of two reference objects, where no single block fragment
              (one block's object, inside its owned region) does: the two were
              only joined by stitching, across a border; or where one fragment
              does (a block merged them in its own region) and stitching
              joined other blocks' pieces of them to it (`spread`): the merge
              crossed the border through stitching.

Arrays are zyx over the grid's region (index 0 is the region's start).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ffn.blockwise import grid as grid_lib
from ffn.blockwise import matching


@dataclasses.dataclass(frozen=True)
class Cut:
  """A reference object in two stitched pieces across one border."""
  reference_id: int
  before_id: int  # The stitched piece on the side of lower coordinates.
  after_id: int
  axis: int  # zyx axis of the border plane.
  position: int  # First voxel (region-local) after the border.
  contact: int  # Voxel pairs across the border inside the reference object.


@dataclasses.dataclass(frozen=True)
class FalseJoin:
  """Two reference objects in one stitched object that no block fragment holds together."""
  stitched_id: int
  reference_ids: tuple[int, int]
  voxels: tuple[int, int]  # Voxels the stitched object shares with each.
  spread: bool = False  # One block merged them; stitching joined other pieces to the merge.


@dataclasses.dataclass(frozen=True)
class BorderErrors:
  """Cuts and false joins at block borders, and how many reference objects cross a border."""
  crossing_objects: int
  cuts: tuple[Cut, ...]
  false_joins: tuple[FalseJoin, ...]

  @property
  def cut_objects(self) -> int:
    """Reference objects cut at one border or more."""
    return len({cut.reference_id for cut in self.cuts})

  @property
  def joined_objects(self) -> int:
    """Stitched objects that make one false join or more."""
    return len({join.stitched_id for join in self.false_joins})


def border_planes(grid: grid_lib.BlockGrid) -> list[tuple[int, int]]:
  """(zyx axis, region-local first voxel after it) of every border between owned regions."""
  planes = set()
  for index in grid.indices():
    start = grid.owned_box(index).start_zyx
    for axis in range(3):
      if start[axis] > grid.start[axis]:
        planes.add((axis, int(start[axis]) - grid.start[axis]))
  return sorted(planes)


def owned_fragments(grid: grid_lib.BlockGrid,
                    load_block: Callable[[grid_lib.Index], np.ndarray]) -> np.ndarray:
  """The region with each owned voxel labelled by its block's object (packed key; 0 stays 0).

  This is the stitched volume before stitching: `load_block(index)` gives a
  block's own zyx labels, of the block's size.
  """
  volume = np.zeros(grid.size, dtype=np.uint64)
  for index in grid.indices():
    labels = np.asarray(load_block(index))
    owned = grid.owned_box(index)
    inside = tuple(slice(b - s, b - s + n) for b, s, n in
                   zip(owned.start_zyx, grid.corner(index), owned.size_zyx))
    crop = labels[inside].astype(np.uint64)
    keys = matching.pack_keys(grid.ordinal(index), crop.ravel()).reshape(crop.shape)
    target = tuple(slice(b - s, b - s + n) for b, s, n in
                   zip(owned.start_zyx, grid.start, owned.size_zyx))
    volume[target] = np.where(crop != 0, keys, 0)
  return volume


def overlap_table(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(ids in a, ids in b, shared voxels) of every pair of non-zero labels that share voxels."""
  both = (a != 0) & (b != 0)
  ids_a, inv_a = np.unique(a[both], return_inverse=True)
  ids_b, inv_b = np.unique(b[both], return_inverse=True)
  pairs, counts = np.unique(inv_a.astype(np.int64) * len(ids_b) + inv_b, return_counts=True)
  return ids_a[pairs // len(ids_b)], ids_b[pairs % len(ids_b)], counts


def _shared(table, min_voxels: int) -> dict[tuple[int, int], int]:
  """{(id in a, id in b): voxels} of the pairs of an overlap table sharing >= min_voxels."""
  ids_a, ids_b, counts = table
  keep = counts >= min_voxels
  return {(int(x), int(y)): int(n) for x, y, n in zip(ids_a[keep], ids_b[keep], counts[keep])}


def _crossings(reference: np.ndarray, stitched: np.ndarray, planes, min_contact: int):
  """(reference objects crossing a border, {(ref, before, after, axis, position): contact})."""
  crossing, cut_contacts = set(), {}
  for axis, position in planes:
    ref_b = np.take(reference, position - 1, axis=axis)
    ref_a = np.take(reference, position, axis=axis)
    st_b = np.take(stitched, position - 1, axis=axis)
    st_a = np.take(stitched, position, axis=axis)
    inside = (ref_b == ref_a) & (ref_b != 0)
    ids, counts = np.unique(ref_b[inside], return_counts=True)
    crossing.update(int(i) for i in ids[counts >= min_contact])
    split = inside & (st_b != st_a) & (st_b != 0) & (st_a != 0)
    if not np.any(split):
      continue
    triples, counts = np.unique(np.stack([ref_b[split], st_b[split], st_a[split]]).astype(
        np.uint64), axis=1, return_counts=True)
    for (r, b, a), n in zip(triples.T, counts):
      if n >= min_contact:
        cut_contacts[(int(r), int(b), int(a), axis, position)] = int(n)
  return crossing, cut_contacts


def find_border_errors(reference: np.ndarray, stitched: np.ndarray, fragments: np.ndarray,
                       grid: grid_lib.BlockGrid, min_voxels: int = 100,
                       min_contact: int = 10) -> BorderErrors:
  """The cuts and false joins of `stitched` at the borders of `grid`, against `reference`.

  `fragments` is `owned_fragments` of the blocks `stitched` was made from;
  pass `stitched` itself to count cuts alone (a volume never falsely joins
  its own fragments).
  """
  shape = tuple(grid.size)
  assert reference.shape == stitched.shape == fragments.shape == shape, (
      reference.shape, stitched.shape, fragments.shape, shape)
  crossing, cut_contacts = _crossings(reference, stitched, border_planes(grid), min_contact)
  pieces = _shared(overlap_table(reference, stitched), min_voxels)
  cuts = tuple(Cut(r, b, a, axis, position, n)
               for (r, b, a, axis, position), n in sorted(cut_contacts.items())
               if (r, b) in pieces and (r, a) in pieces)

  # Which reference objects each stitched object, and each of its block fragments, holds.
  held = {}
  for (r, s), n in pieces.items():
    held.setdefault(s, {})[r] = n
  ids_f, ids_s, counts = overlap_table(fragments, stitched)
  owner = {}  # A fragment lies in one stitched object; the largest share names it.
  for f, s, n in sorted(zip(ids_f.tolist(), ids_s.tolist(), counts.tolist()),
                        key=lambda t: t[2]):
    owner[f] = s
  by_fragment = {}
  for f, r in sorted(_shared(overlap_table(fragments, reference), min_voxels)):
    by_fragment.setdefault(f, []).append(r)
  holding = {}  # (stitched id, reference id) -> how many of its fragments hold it.
  in_block = set()
  for f, refs in by_fragment.items():
    for r in refs:
      holding[(owner.get(f), r)] = holding.get((owner.get(f), r), 0) + 1
    in_block.update((owner.get(f), x, y) for i, x in enumerate(refs) for y in refs[i + 1:])
  joins = []
  for s in sorted(held):
    refs = sorted(held[s])
    for i, x in enumerate(refs):
      for y in refs[i + 1:]:
        if (s, x, y) not in in_block:
          joins.append(FalseJoin(s, (x, y), (held[s][x], held[s][y])))
        elif holding.get((s, x), 0) > 1 or holding.get((s, y), 0) > 1:
          # A block merged them, and stitching joined other blocks' pieces to that merge.
          joins.append(FalseJoin(s, (x, y), (held[s][x], held[s][y]), spread=True))
  return BorderErrors(len(crossing), cuts, tuple(joins))
