"""Which axis of a 4-D image holds channels: (c, z, y, x) or (z, y, x, c), decided once.

Images are read as (c, z, y, x) by inference and training. A (z, y, x, c) file
read that way would silently treat z as channels, so the layout is decided from
the shape: the channel axis is the end axis of length 1 when the other end is
longer, else the end axis of at most MAX_CHANNELS voxels when the other end is
longer than that. Where that leaves it open, the box a request reads decides
if only one layout holds it; anything else is refused.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ffn.utils import errors

MAX_CHANNELS = 16


class ChannelAxisError(errors.FFNError):
  """A 4-D volume whose channel axis cannot be told from its shape."""


def channel_axis(shape: Sequence[int], what: str,
                 box_end_zyx: Optional[Sequence[int]] = None) -> int:
  """0 for (c, z, y, x), 3 for (z, y, x, c); ChannelAxisError when the shape cannot tell.

  `box_end_zyx`, the far corner of the box a request reads, settles shapes
  the rule leaves open when only one layout holds the box.
  """
  shape = tuple(int(s) for s in shape)
  if len(shape) != 4:
    raise ChannelAxisError(f'{what} has shape {shape}; expected 4 axes')
  try:
    return _axis_from_shape(shape, what)
  except ChannelAxisError:
    if box_end_zyx is None:
      raise
    holds = [axis for axis, spatial in ((0, shape[1:]), (3, shape[:3]))
             if all(int(e) <= s for e, s in zip(box_end_zyx, spatial))]
    if len(holds) != 1:
      raise
    return holds[0]


def _axis_from_shape(shape: tuple[int, ...], what: str) -> int:
  """The channel axis the shape alone gives."""
  # A single channel is the commonest case: an end of length 1 facing a longer one.
  if (shape[0] == 1) != (shape[3] == 1):
    return 0 if shape[0] == 1 else 3
  first, last = shape[0] <= MAX_CHANNELS, shape[3] <= MAX_CHANNELS
  if first and not last:
    return 0
  if last and not first:
    return 3
  reason = ('both end axes are short enough to be channels' if first else
            f'neither end axis has at most {MAX_CHANNELS} channels')
  raise ChannelAxisError(
      f'{what} has 4-D shape {shape} and its channel axis is ambiguous ({reason}); store it '
      'as (c, z, y, x) or (z, y, x, c) with the channel axis the only one of at most '
      f'{MAX_CHANNELS} voxels, or give a 3-D (z, y, x) volume')


class ChannelsFirst:
  """A read-only (z, y, x, c) volume seen as (c, z, y, x): indexing reads and transposes."""

  def __init__(self, volume: Any):
    self._volume = volume

  @property
  def shape(self) -> tuple[int, ...]:
    """The (c, z, y, x) shape."""
    z, y, x, c = (int(s) for s in self._volume.shape)
    return (c, z, y, x)

  @property
  def ndim(self) -> int:
    return 4

  @property
  def dtype(self) -> np.dtype:
    return np.dtype(self._volume.dtype)

  def __getattr__(self, name: str) -> Any:
    if name.startswith('__'):  # Never numpy's array protocols of the (z, y, x, c) volume.
      raise AttributeError(name)
    return getattr(self._volume, name)  # e.g. `.file` of an h5py dataset

  def __getitem__(self, index) -> np.ndarray:
    if not isinstance(index, tuple):
      index = (index,)
    if len(index) == 4 and index[0] is Ellipsis:
      index = (slice(None),) + index[1:]
    if any(i is Ellipsis or i is None for i in index):
      full = np.moveaxis(np.asarray(self._volume[...]), 3, 0)
      return full[index]
    index = index + (slice(None),) * (4 - len(index))
    data = np.asarray(self._volume[index[1:] + index[:1]])
    # Integer indices drop axes; the channel axis (last) moves first only if it remains.
    if isinstance(index[0], slice) or np.ndim(index[0]):
      return np.moveaxis(data, -1, 0)
    return data

  def read(self, box) -> np.ndarray:
    """The (c, z, y, x) contents of an xyz box."""
    return self[(slice(None),) + tuple(box.to_slice())]

  def __enter__(self) -> 'ChannelsFirst':
    return self

  def __exit__(self, *exc) -> None:
    close = getattr(self._volume, 'close', None)
    if close is not None:
      close()

  def __array__(self, dtype=None, copy=None):
    del copy
    data = self[...]
    return data if dtype is None else data.astype(dtype)


def channels_first(volume: Any, what: str,
                   box_end_zyx: Optional[Sequence[int]] = None) -> Any:
  """`volume` as (c, z, y, x) when 4-D (3-D volumes are returned as they are)."""
  if len(volume.shape) != 4:
    return volume
  axis = channel_axis(volume.shape, what, box_end_zyx)
  return volume if axis == 0 else ChannelsFirst(volume)
