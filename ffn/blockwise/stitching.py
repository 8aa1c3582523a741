"""Stitching subvolume results into one global segmentation, one step per scheduled block.

  match_block    block + each later neighbour -> its owned objects and matched pairs
  resolve_ids    all matches -> the id table (union-find; one global id per object)
  write_block    block -> its owned region, relabelled, into the stitched output

Each step reads the subvolume results as `storage.load_segmentation` does,
writes its own small file atomically, and can be repeated with the same
result, so a killed run is finished by running the missing steps again. The
work files live in `<segmentation_dir>/blockwise/stitch-<digest>/`, the
digest naming the grid and the stitching settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from typing import Optional

import numpy as np

from ffn.blockwise import grid as grid_lib
from ffn.blockwise import matching
from ffn.blockwise import output as output_lib
from ffn.inference.io import results
from ffn.utils import atomic
from ffn.utils import bounding_box
from ffn.utils import errors


@dataclasses.dataclass(frozen=True)
class StitchSettings:
  """What to stitch (results of `grid` in `segmentation_dir`), how, and where to.

  The output spans voxel 0 to `output_shape_zyx` (default: to the region's
  end), so that it lines up with the image and its groundtruth.
  `active_blocks` (grid positions) are the only blocks segmented, matched and
  written (None: every block); the rest of the output stays 0.
  `match_margin` > 0 matches objects on the voxels of each overlap within
  that many voxels of the border between the two owned regions only (0: the
  whole overlap). `owner_decides` settles an object matched to several of
  the other side by which block owns the voxels they share (see matching).
  `voxel_size_xyz` (nm) is recorded with the output (None: not recorded; it
  decides nothing of the result, so it is not part of the digest).
  """
  segmentation_dir: str
  grid: grid_lib.BlockGrid
  output_volume: str
  min_overlap_size: int = 100
  output_shape_zyx: Optional[tuple[int, int, int]] = None
  min_overlap_fraction: float = 0.5
  active_blocks: Optional[tuple[grid_lib.Index, ...]] = None
  match_margin: int = 0
  owner_decides: bool = False
  voxel_size_xyz: Optional[tuple[float, float, float]] = None

  def __post_init__(self):
    assert int(self.match_margin) >= 0, self.match_margin
    object.__setattr__(self, 'match_margin', int(self.match_margin))
    if self.voxel_size_xyz is not None:
      voxel_size = tuple(float(v) for v in self.voxel_size_xyz)
      assert len(voxel_size) == 3 and min(voxel_size) > 0, voxel_size
      object.__setattr__(self, 'voxel_size_xyz', voxel_size)
    if self.output_shape_zyx is not None:
      shape = tuple(int(n) for n in self.output_shape_zyx)
      end = tuple(s + n for s, n in zip(self.grid.start, self.grid.size))
      assert all(n >= e for n, e in zip(shape, end)), (shape, end)
      object.__setattr__(self, 'output_shape_zyx', shape)
    if self.active_blocks is not None:
      active = tuple(sorted({tuple(int(i) for i in index) for index in self.active_blocks}))
      assert all(all(0 <= i < n for i, n in zip(index, self.grid.shape)) for index in active)
      object.__setattr__(self, 'active_blocks', active)

  def blocks(self) -> list[grid_lib.Index]:
    """The grid positions to segment, match and write, in raster order."""
    if self.active_blocks is None:
      return list(self.grid.indices())
    return list(self.active_blocks)

  def is_active(self, index: grid_lib.Index) -> bool:
    """Whether the block at `index` is one of `blocks()`."""
    return self.active_blocks is None or tuple(index) in self.active_blocks

  def digest(self) -> str:
    """A short hash of everything that decides the stitched result."""
    described = [self.grid.to_json_dict(), self.output_volume.strip(),
                 int(self.min_overlap_size), float(self.min_overlap_fraction),
                 self.output_shape()]
    if self.active_blocks is not None:  # Unchanged digests for runs over every block.
      described.append([list(index) for index in self.active_blocks])
    if self.match_margin:  # Likewise for runs matching on whole overlaps.
      described.append({'match_margin': self.match_margin})
    if self.owner_decides:
      described.append({'owner_decides': True})
    text = json.dumps(described, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]

  @property
  def work_dir(self) -> str:
    """Where the matches, the id table and the scheduler's done markers go."""
    return os.path.join(os.path.abspath(self.segmentation_dir), 'blockwise',
                        f'stitch-{self.digest()}')

  def output(self) -> output_lib.StitchedOutput:
    """The stitched output volume."""
    return output_lib.StitchedOutput(self.output_volume, self.work_dir, self.voxel_size_xyz)

  def output_shape(self) -> tuple[int, int, int]:
    """The zyx shape of the output volume."""
    if self.output_shape_zyx is not None:
      return self.output_shape_zyx
    return tuple(int(s + n) for s, n in zip(self.grid.start, self.grid.size))

  def output_chunks(self) -> tuple[int, int, int]:
    """Chunks no larger than any owned region, so that non-neighbours never share one."""
    return tuple(max(1, min(64, n)) for n in self.grid.min_owned_size())


def _match_path(settings: StitchSettings, ordinal: int) -> str:
  return os.path.join(settings.work_dir, 'matches', f'{ordinal}.npz')


def _id_table_path(settings: StitchSettings) -> str:
  return os.path.join(settings.work_dir, 'id_table.npz')


def missing_results(settings: StitchSettings) -> list[str]:
  """The names of subvolumes whose result is not in the segmentation directory."""
  grid = settings.grid
  return [grid.name(index) for index in settings.blocks()
          if results.get_existing_subvolume_path(settings.segmentation_dir,
                                                 grid.corner(index)) is None]


def load_block(settings: StitchSettings, index: grid_lib.Index) -> np.ndarray:
  """The uint64 zyx labels of one subvolume result, as inference saved them."""
  corner, size = settings.grid.corner(index), settings.grid.block_size(index)
  labels, _ = results.load_segmentation(settings.segmentation_dir, corner, split_cc=False)
  if labels.shape != tuple(size):
    raise errors.FFNError(f'the result of {settings.grid.name(index)} in {settings.segmentation_dir} '
                     f'has shape {labels.shape} (zyx), expected {tuple(size)}: it was made '
                     'with another --subvolume_size or --bounding_box')
  return labels


def _crop(labels: np.ndarray, block_box: bounding_box.BoundingBox,
          box: bounding_box.BoundingBox) -> np.ndarray:
  """The part of a block's labels inside `box` (global xyz)."""
  local = bounding_box.BoundingBox(start=box.start - block_box.start, size=box.size)
  return labels[local.to_slice()]


def matching_box(settings: StitchSettings, index: grid_lib.Index, other: grid_lib.Index
                 ) -> Optional[bounding_box.BoundingBox]:
  """The xyz box on which objects of two neighbouring blocks are matched (None: none)."""
  grid = settings.grid
  shared = bounding_box.intersection(grid.box(index), grid.box(other))
  if shared is None or not settings.match_margin:
    return shared
  start, end = list(shared.start_zyx), [s + n for s, n in zip(shared.start_zyx, shared.size_zyx)]
  owned = grid.owned_box(index)
  for axis in range(3):
    if other[axis] == index[axis]:
      continue
    border = (owned.start_zyx[axis] + owned.size_zyx[axis] if other[axis] > index[axis]
              else owned.start_zyx[axis])
    start[axis] = max(start[axis], border - settings.match_margin)
    end[axis] = min(end[axis], border + settings.match_margin)
  if any(e <= s for s, e in zip(start, end)):
    return None
  return bounding_box.BoundingBox.from_zyx(start, [e - s for s, e in zip(start, end)])


def _owner(grid: grid_lib.BlockGrid, index: grid_lib.Index, other: grid_lib.Index,
           box: bounding_box.BoundingBox) -> np.ndarray:
  """1 where `index` owns a voxel of `box`, -1 where `other` does, 0 elsewhere (zyx)."""
  owner = np.zeros(box.size_zyx, dtype=np.int8)
  for block, value in ((index, 1), (other, -1)):
    owned = bounding_box.intersection(grid.owned_box(block), box)
    if owned is not None:
      local = bounding_box.BoundingBox(start=owned.start - box.start, size=owned.size)
      owner[local.to_slice()] = value
  return owner


def match_block(settings: StitchSettings, index: grid_lib.Index) -> dict:
  """Finds the block's owned objects and its matches with later neighbours; saves them."""
  grid = settings.grid
  ordinal = grid.ordinal(index)
  labels = load_block(settings, index)
  box = grid.box(index)
  owned = np.unique(_crop(labels, box, grid.owned_box(index)))
  owned_keys = matching.pack_keys(ordinal, owned[owned != 0])
  pairs = []
  for other in filter(settings.is_active, grid.forward_neighbours(index)):
    other_box = grid.box(other)
    shared = matching_box(settings, index, other)
    if shared is None:
      continue
    other_labels = load_block(settings, other)
    owner = _owner(grid, index, other, shared) if settings.owner_decides else None
    matched = matching.match_overlap(_crop(labels, box, shared),
                                     _crop(other_labels, other_box, shared),
                                     settings.min_overlap_size, settings.min_overlap_fraction,
                                     owner)
    pairs.append(np.stack([matching.pack_keys(ordinal, matched[:, 0]),
                           matching.pack_keys(grid.ordinal(other), matched[:, 1])], axis=1))
    del other_labels
  pairs = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.uint64)
  with atomic.atomic_open(_match_path(settings, ordinal), 'wb') as f:
    np.savez(f, owned=owned_keys, pairs=pairs)
  return {'objects': len(owned_keys), 'matches': len(pairs)}


def resolve_ids(settings: StitchSettings) -> dict:
  """Union-find over every block's matches; saves the id table (owned key -> global id)."""
  start = time.time()
  owned, pairs = [], []
  for ordinal in (settings.grid.ordinal(index) for index in settings.blocks()):
    path = _match_path(settings, ordinal)
    if not os.path.exists(path):
      raise errors.FFNError(f'no matches for block {ordinal} ({path}); run its match step first')
    with np.load(path) as data:
      owned.append(data['owned'])
      pairs.append(data['pairs'])
  owned = np.concatenate(owned)
  pairs = np.concatenate(pairs)
  keys, ids, count = matching.global_ids(owned, pairs)
  with atomic.atomic_open(_id_table_path(settings), 'wb') as f:
    np.savez(f, keys=keys, ids=ids)
  stats = {'fragments': len(keys), 'matches': len(pairs), 'objects': count}
  logging.info('Stitching: %d object fragments in %d blocks, %d matches across overlaps -> '
               '%d objects (%.1f s).', len(keys), len(settings.blocks()), len(pairs), count,
               time.time() - start)
  return stats


def load_id_table(settings: StitchSettings) -> tuple[np.ndarray, np.ndarray]:
  """(sorted owned keys, their global ids) of the resolved id table."""
  with np.load(_id_table_path(settings)) as data:
    return data['keys'], data['ids']


def write_block(settings: StitchSettings, index: grid_lib.Index) -> int:
  """Writes the block's owned region, in global ids, to the staged output; returns its voxels."""
  grid = settings.grid
  labels = load_block(settings, index)
  owned_box = grid.owned_box(index)
  owned = _crop(labels, grid.box(index), owned_box)
  keys, ids = load_id_table(settings)
  settings.output().write(owned_box.start_zyx, matching.relabel(owned, grid.ordinal(index),
                                                                keys, ids))
  return int(owned.size)

