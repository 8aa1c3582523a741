"""The block grid of a blockwise run: overlapping subvolumes, their neighbours and owned regions.

A region (xyz box) is cut into subvolumes of `subvolume_size` placed every
`subvolume_size - overlap` voxels; the last subvolume of each axis is moved
back so that it ends at the region's end (it then overlaps its neighbour
more). Each voxel of an overlap is owned by the subvolume whose centre is
nearer (ties go to the later one), so the owned regions tile the region.
Everything here is zyx; `BlockGrid.from_xyz` takes the xyz flag values.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Iterator, Sequence

import numpy as np

from ffn.utils import axes
from ffn.utils import bounding_box

Index = tuple[int, int, int]


def _axis_starts(start: int, size: int, sub: int, overlap: int) -> list[int]:
  """The start of each subvolume along one axis."""
  if size <= sub:
    return [start]
  stride = sub - overlap
  count = -(-(size - overlap) // stride)
  return [min(start + i * stride, start + size - sub) for i in range(count)]


def _axis_owned(starts: Sequence[int], sizes: Sequence[int]) -> list[tuple[int, int]]:
  """[begin, end) along one axis of the voxels each subvolume owns (nearest centre)."""
  bounds = [starts[0]]
  for i in range(len(starts) - 1):
    # Voxel v (centre v + 0.5) goes to the later subvolume when 4v + 2 >= twice the
    # sum of the two centres; integers only, so every process agrees.
    twice_centres = 2 * starts[i] + sizes[i] + 2 * starts[i + 1] + sizes[i + 1]
    bounds.append(-(-(twice_centres - 2) // 4))
  bounds.append(starts[-1] + sizes[-1])
  return list(zip(bounds[:-1], bounds[1:]))


@dataclasses.dataclass(frozen=True)
class BlockGrid:
  """Overlapping subvolumes covering a zyx region, indexed by zyx grid position."""
  start: Index
  size: Index
  subvolume_size: Index
  overlap: Index

  def __post_init__(self):
    for name in ('start', 'size', 'subvolume_size', 'overlap'):
      object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
    for sub, ovl, n in zip(self.subvolume_size, self.overlap, self.size):
      assert sub > 0 and 0 <= ovl < sub and n > 0, (self.subvolume_size, self.overlap, self.size)
    starts, sizes, owned = [], [], []
    for axis in range(3):
      axis_starts = _axis_starts(self.start[axis], self.size[axis],
                                 self.subvolume_size[axis], self.overlap[axis])
      axis_sizes = [min(self.subvolume_size[axis], self.size[axis])] * len(axis_starts)
      starts.append(axis_starts)
      sizes.append(axis_sizes)
      owned.append(_axis_owned(axis_starts, axis_sizes))
    object.__setattr__(self, '_starts', starts)
    object.__setattr__(self, '_sizes', sizes)
    object.__setattr__(self, '_owned', owned)

  @classmethod
  def from_xyz(cls, box: bounding_box.BoundingBox, subvolume_size_xyz: Sequence[int],
               overlap_xyz: Sequence[int]) -> 'BlockGrid':
    """The grid of an xyz region with xyz subvolume size and overlap."""
    return cls(box.start_zyx, box.size_zyx, axes.xyz_to_zyx(subvolume_size_xyz),
               axes.xyz_to_zyx(overlap_xyz))

  @property
  def shape(self) -> Index:
    """The number of subvolumes along z, y and x."""
    return tuple(len(s) for s in self._starts)

  @property
  def stride(self) -> Index:
    """The regular step between subvolume starts (zyx)."""
    return tuple(s - o for s, o in zip(self.subvolume_size, self.overlap))

  def __len__(self) -> int:
    return int(np.prod(self.shape))

  def indices(self) -> Iterator[Index]:
    """Every grid position, in zyx raster order."""
    return itertools.product(*(range(n) for n in self.shape))

  def ordinal(self, index: Index) -> int:
    """The raster position of a grid index (0 .. len - 1)."""
    return int(np.ravel_multi_index(index, self.shape))

  def corner(self, index: Index) -> Index:
    """The zyx corner of a subvolume (the one in its result file name)."""
    return tuple(self._starts[a][index[a]] for a in range(3))

  def block_size(self, index: Index) -> Index:
    """The zyx size of a subvolume."""
    return tuple(self._sizes[a][index[a]] for a in range(3))

  def box(self, index: Index) -> bounding_box.BoundingBox:
    """The subvolume as an (xyz) BoundingBox."""
    return bounding_box.BoundingBox.from_zyx(self.corner(index), self.block_size(index))

  def owned_box(self, index: Index) -> bounding_box.BoundingBox:
    """The part of the region this subvolume writes to the stitched volume."""
    begin = [self._owned[a][index[a]][0] for a in range(3)]
    end = [self._owned[a][index[a]][1] for a in range(3)]
    return bounding_box.BoundingBox.from_zyx(begin, np.subtract(end, begin))

  def min_owned_size(self) -> Index:
    """The smallest owned extent along each axis (zyx)."""
    return tuple(min(e - b for b, e in self._owned[a]) for a in range(3))

  def name(self, index: Index) -> str:
    """How logs and error reports name a subvolume: its result file stem and xyz box."""
    z, y, x = self.corner(index)
    d, h, w = self.block_size(index)
    return f'seg-{x}_{y}_{z} (xyz start {x},{y},{z} size {w},{h},{d})'

  def index_of_offset(self, offset_zyx: Sequence[int]) -> Index:
    """The grid index of a scheduler block whose write offset is `offset_zyx` (regular steps)."""
    return tuple((int(o) - s) // t for o, s, t in zip(offset_zyx, self.start, self.stride))

  def forward_neighbours(self, index: Index) -> list[Index]:
    """The neighbours (faces, edges, corners) after `index` in raster order: each pair once."""
    result = []
    for step in itertools.product((-1, 0, 1), repeat=3):
      if step <= (0, 0, 0):
        continue
      other = tuple(i + s for i, s in zip(index, step))
      if all(0 <= o < n for o, n in zip(other, self.shape)):
        result.append(other)
    return result

  def blocks_holding(self, points_zyx: np.ndarray) -> list[Index]:
    """The grid positions whose subvolume holds at least one of the zyx points, in raster order."""
    points = np.asarray(points_zyx, np.int64).reshape(-1, 3)
    found = set()
    for point in points:
      per_axis = [[i for i, (s, n) in enumerate(zip(self._starts[a], self._sizes[a]))
                   if s <= point[a] < s + n] for a in range(3)]
      found.update(itertools.product(*per_axis))
    return sorted(found)

  def to_json_dict(self) -> dict:
    """The four vectors that define the grid (zyx)."""
    return dataclasses.asdict(self)
