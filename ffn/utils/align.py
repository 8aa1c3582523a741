"""Local alignment of subvolumes for inference; only the identity is provided.

An `Alignment` maps voxels of a region of the source volume onto the region
that inference works on. The open-source pipeline never warps data, but the
storage and runner code is written against this interface so that a real
aligner can be dropped in. All coordinates here are zyx.
"""

from __future__ import annotations


import numpy as np

from ffn.utils.axes import ZYX


class Alignment:
  """The identity alignment of the region at `corner` (zyx) with `size` (zyx)."""

  def __init__(self, corner: ZYX, size: ZYX):
    self._corner = corner
    self._size = size

  @property
  def corner(self) -> ZYX:
    """The zyx start of the region this alignment was derived for."""
    return self._corner

  @property
  def size(self) -> ZYX:
    """The zyx size of the region this alignment was derived for."""
    return self._size

  def expand_bounds(self, corner: ZYX, size: ZYX, forward: bool = True):
    """The (corner, size) of the smallest box holding the given box once transformed."""
    del forward  # The identity is its own inverse.
    return corner, size

  def transform_shift_mask(self, corner: ZYX, scale, mask: np.ndarray) -> np.ndarray:
    """The shift field `mask` ((y, x, ...) channels first) as seen after alignment."""
    del corner, scale
    return mask

  def transform(self, zyx: np.ndarray, forward: bool = True) -> np.ndarray:
    """Transformed points, given as a [3, n] zyx array."""
    del forward
    return zyx

  def rescaled(self, zyx_scale) -> 'Alignment':
    """A copy of this alignment for a volume scaled by `zyx_scale`."""
    zyx_scale = np.asarray(zyx_scale)
    return Alignment(zyx_scale * np.asarray(self.corner), zyx_scale * np.asarray(self.size))

  def align_and_crop(self, src_corner: ZYX, source: np.ndarray, dst_corner: ZYX,
                     dst_size: ZYX, fill=0, forward: bool = True) -> np.ndarray:
    """`source` (a zyx array placed at `src_corner`) resampled onto the box dst_corner/dst_size.

    Destination voxels with no source voxel get `fill`. When the geometries are
    equal, `source` itself is returned (not a copy).
    """
    del forward
    src_corner = np.asarray(src_corner, dtype=np.int64)
    dst_corner = np.asarray(dst_corner, dtype=np.int64)
    dst_size = np.asarray(dst_size, dtype=np.int64)
    src_size = np.asarray(source.shape[:3], dtype=np.int64)
    if np.array_equal(src_corner, dst_corner) and np.array_equal(src_size, dst_size):
      return source

    destination = np.full(tuple(dst_size) + tuple(source.shape[3:]), fill, dtype=source.dtype)
    # The overlap of both boxes, in global coordinates.
    start = np.maximum(src_corner, dst_corner)
    end = np.minimum(src_corner + src_size, dst_corner + dst_size)
    if np.any(end <= start):
      return destination
    dst_sel = tuple(slice(int(a), int(b)) for a, b in zip(start - dst_corner, end - dst_corner))
    src_sel = tuple(slice(int(a), int(b)) for a, b in zip(start - src_corner, end - src_corner))
    destination[dst_sel] = source[src_sel]
    return destination


class Aligner:
  """Produces the alignment valid for a region; here always the identity."""

  def generate_alignment(self, corner: ZYX, size: ZYX) -> Alignment:
    """The alignment for the zyx box corner/size."""
    return Alignment(corner, size)
