"""Axis-aligned boxes in voxel space (xyz), interchangeable with the BoundingBox proto.

Every crop and paste in the project goes through this type, so that the xyz
(flags, protos, boxes) to zyx (numpy arrays) switch happens in one place:
`BoundingBox.to_slice()`.
"""

from __future__ import annotations

import itertools
from typing import Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from ffn.utils import axes
from ffn.utils import bounding_box_pb2
from ffn.utils import geom_utils

VectorLike = Union[Sequence[int], np.ndarray, 'geom_utils.vector_pb2.Vector3j']


class BoundingBox:
  """A box given by an inclusive `start` and a `size` (both xyz int64 vectors)."""

  def __init__(self, start=None, size=None, end=None):
    """Builds a box from two of start/size/end, or from one box or proto alone."""
    if isinstance(start, (BoundingBox, bounding_box_pb2.BoundingBox)):
      if size is not None or end is not None:
        raise ValueError('a BoundingBox or proto must be given alone, '
                         f'got size={size!r}, end={end!r}')
      start, size = start.start, start.size
    given = sum(v is not None for v in (start, size, end))
    if given != 2:
      raise ValueError('exactly two of start, size and end must be given, '
                       f'got start={start!r}, size={size!r}, end={end!r}')
    start = None if start is None else geom_utils.to_numpy3_vector(start)
    size = None if size is None else geom_utils.to_numpy3_vector(size)
    end = None if end is None else geom_utils.to_numpy3_vector(end)
    if start is None:
      start = end - size
    elif size is None:
      size = end - start
    self.start: np.ndarray = start
    self.size: np.ndarray = size

  @property
  def end(self) -> np.ndarray:
    """The exclusive end corner (xyz)."""
    return self.start + self.size

  def adjusted_by(self, start: Optional[VectorLike] = None,
                  end: Optional[VectorLike] = None) -> 'BoundingBox':
    """A new box with `start` added to the start corner and `end` to the end corner."""
    new_start, new_end = self.start, self.end
    if start is not None:
      new_start = new_start + geom_utils.to_numpy3_vector(start)
    if end is not None:
      new_end = new_end + geom_utils.to_numpy3_vector(end)
    return BoundingBox(start=new_start, end=new_end)

  def Sub(self, start=None, end=None, size=None) -> 'BoundingBox':  # pylint: disable=invalid-name
    """A sub-box whose start/end are given relative to this box's start."""
    if start is None and end is None:
      if size is not None:
        raise ValueError('size must be given together with start or end')
      return self
    if start is None:
      end = geom_utils.to_numpy3_vector(end)
      if size is None:
        return BoundingBox(self.start, end)  # upstream quirk: end is used as size
      size = geom_utils.to_numpy3_vector(size)
      return BoundingBox(self.start + end - size, size)
    start = geom_utils.to_numpy3_vector(start)
    if end is None:
      size = self.size - start if size is None else size
      return BoundingBox(self.start + start, size)
    if size is not None:
      raise ValueError('size must not be given when both start and end are')
    return BoundingBox(self.start + start, geom_utils.to_numpy3_vector(end) - start)

  def to_proto(self) -> bounding_box_pb2.BoundingBox:
    """The equivalent BoundingBox proto."""
    proto = bounding_box_pb2.BoundingBox()
    proto.start.CopyFrom(geom_utils.to_vector3j(self.start))
    proto.size.CopyFrom(geom_utils.to_vector3j(self.size))
    return proto

  def to_slice(self) -> tuple[slice, slice, slice]:
    """Index expression selecting this box from a zyx array."""
    s, e = self.start, self.end
    return np.index_exp[s[2]:e[2], s[1]:e[1], s[0]:e[0]]

  @property
  def start_zyx(self) -> tuple[int, int, int]:
    """The start corner in numpy (zyx) order."""
    return tuple(int(v) for v in axes.xyz_to_zyx(self.start))

  @property
  def size_zyx(self) -> tuple[int, int, int]:
    """The size in numpy (zyx) order."""
    return tuple(int(v) for v in axes.xyz_to_zyx(self.size))

  @classmethod
  def from_zyx(cls, start_zyx: Sequence[int], size_zyx: Sequence[int]) -> 'BoundingBox':
    """A box from a zyx corner and size."""
    return cls(start=axes.zyx_to_xyz(start_zyx), size=axes.zyx_to_xyz(size_zyx))

  def contains_box(self, other: 'BoundingBox') -> bool:
    """Whether `other` lies entirely inside this box."""
    return bool(np.all(other.start >= self.start) and np.all(other.end <= self.end))

  def is_empty(self) -> bool:
    """Whether the box holds no voxel."""
    return bool(np.any(self.size <= 0))

  def __repr__(self) -> str:
    return f'BoundingBox(start={tuple(int(v) for v in self.start)}, size={tuple(int(v) for v in self.size)})'

  def __eq__(self, other) -> bool:
    if isinstance(other, bounding_box_pb2.BoundingBox):
      other = BoundingBox(other)
    if not isinstance(other, BoundingBox):
      return False
    return bool(np.all(self.start == other.start) and np.all(self.size == other.size))

  def __ne__(self, other) -> bool:
    return not self == other

  def __hash__(self) -> int:
    return hash((tuple(self.start.tolist()), tuple(self.size.tolist())))


def _as_box(box) -> BoundingBox:
  if isinstance(box, BoundingBox):
    return box
  if isinstance(box, bounding_box_pb2.BoundingBox):
    return BoundingBox(box)
  raise ValueError(f'expected a BoundingBox or BoundingBox proto, got {box!r}')


def intersection(box0, box1) -> Optional[BoundingBox]:
  """The overlap of two boxes, or None when they do not overlap."""
  box0, box1 = _as_box(box0), _as_box(box1)
  start = np.maximum(box0.start, box1.start)
  end = np.minimum(box0.end, box1.end)
  if np.any(end <= start):
    return None
  return BoundingBox(start=start, end=end)


def intersections(boxes0: Iterable, boxes1: Sequence) -> list[BoundingBox]:
  """All non-empty pairwise intersections of two box lists."""
  result = []
  for b0 in boxes0:
    result.extend(i for i in (intersection(b0, b1) for b1 in boxes1) if i is not None)
  return result


def containing(*boxes) -> BoundingBox:
  """The smallest box containing all given boxes."""
  if not boxes:
    raise ValueError('at least one bounding box must be given')
  boxes = [_as_box(b) for b in boxes]
  start = np.min([b.start for b in boxes], axis=0)
  end = np.max([b.end for b in boxes], axis=0)
  return BoundingBox(start=start, end=end)


def encompass(*boxes) -> BoundingBox:
  """Alias of `containing`, the name used by later upstream code."""
  return containing(*boxes)


class OrderlyOverlappingCalculator:
  """Splits an outer box into a regular grid of sub-boxes that overlap by `overlap`."""

  def __init__(self, outer_box: BoundingBox, sub_box_size: Sequence[Optional[int]],
               overlap: Sequence[int], include_small_sub_boxes: bool = False,
               back_shift_small_sub_boxes: bool = False):
    """`sub_box_size` entries of None span the whole outer box on that axis."""
    outer_box = _as_box(outer_box)
    size = np.array([outer_box.size[i] if s is None else s
                     for i, s in enumerate(sub_box_size)], dtype=np.int64)
    overlap = np.asarray(overlap, dtype=np.int64)
    stride = size - overlap
    if np.any(stride <= 0):
      raise ValueError(f'sub_box_size must be greater than overlap: '
                       f'{size.tolist()} versus {overlap.tolist()}')
    end = outer_box.end if include_small_sub_boxes else outer_box.end - overlap
    self.outer_box = outer_box
    self.start = outer_box.start
    self.end = end
    self.stride = stride
    self.sub_box_size = size
    self.back_shift_small_sub_boxes = back_shift_small_sub_boxes
    self.total_sub_boxes_xyz = np.maximum(-(-(end - self.start) // stride), 0)

  def start_to_box(self, start: VectorLike) -> Optional[BoundingBox]:
    """The sub-box starting at `start`, clipped to or shifted into the outer box."""
    box = BoundingBox(start=start, size=self.sub_box_size)
    if self.back_shift_small_sub_boxes:
      shift = np.maximum(box.end - self.outer_box.end, 0)
      return BoundingBox(start=box.start - shift, size=self.sub_box_size)
    return intersection(box, self.outer_box)

  def index_to_sub_box(self, index: int) -> Optional[BoundingBox]:
    """The sub-box with linear `index` (Fortran order: x changes fastest)."""
    coords = np.unravel_index(index, self.total_sub_boxes_xyz, order='F')
    return self.start_to_box(np.array(coords) * self.stride + self.start)

  def offset_to_index(self, index: int, offset: VectorLike) -> Optional[int]:
    """Linear index of the sub-box at grid `offset` (xyz) from `index`, or None."""
    coords = np.array(np.unravel_index(index, self.total_sub_boxes_xyz, order='F'))
    coords = coords + np.asarray(offset)
    if np.any(coords < 0) or np.any(coords >= self.total_sub_boxes_xyz):
      return None
    return int(np.ravel_multi_index(coords, self.total_sub_boxes_xyz, order='F'))

  def num_sub_boxes(self) -> int:
    """Total number of sub-boxes."""
    return int(np.prod(self.total_sub_boxes_xyz.astype(object)))

  def generate_sub_boxes(self) -> Iterator[BoundingBox]:
    """All sub-boxes in raster order (z outermost, x innermost)."""
    for z, y, x in itertools.product(
        *(range(self.start[i], self.end[i], self.stride[i]) for i in (2, 1, 0))):
      yield self.start_to_box((x, y, z))

  def batched_sub_boxes(self, batch_size: int, begin_index: int = 0,
                        end_index: Optional[int] = None) -> Iterator[Iterator[BoundingBox]]:
    """Iterators over consecutive batches of sub-boxes, by linear index."""
    end_index = self.num_sub_boxes() if end_index is None else end_index
    for first in range(begin_index, end_index, batch_size):
      last = min(first + batch_size, end_index)
      yield (self.index_to_sub_box(i) for i in range(first, last))

  def tag_border_locations(self, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Which faces of sub-box `index` lie on the outer box's start and end faces (xyz bools)."""
    box = self.index_to_sub_box(index)
    return box.start == self.outer_box.start, box.end == self.outer_box.end
