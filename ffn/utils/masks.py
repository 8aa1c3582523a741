"""Boolean masks from MaskConfig protos: coordinate expressions, image and volume channels.

Corners and sizes are zyx.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

import numpy as np

from ffn.utils import align
from ffn.utils import errors
from ffn.utils import expressions
from ffn.utils import volumes
from ffn.utils.axes import ZYX


def clip_subvolume_to_bounds(corner: ZYX, size: ZYX, volume) -> tuple[np.ndarray, np.ndarray]:
  """The zyx (corner, size) of the part of a box inside `volume` (size 0 where it misses)."""
  shape = np.asarray(volume.shape[-3:], dtype=np.int64)
  corner = np.asarray(corner, dtype=np.int64)
  start = np.clip(corner, 0, shape)
  end = np.clip(corner + np.asarray(size, dtype=np.int64), 0, shape)
  return start, np.maximum(end - start, 0)


def _eval_coordinate_expression(expression: str, corner: ZYX, size: ZYX) -> np.ndarray:
  """The boolean array of `expression` over global z, y, x index grids of the box."""
  z, y, x = np.mgrid[tuple(slice(int(c), int(c) + int(s)) for c, s in zip(corner, size))]
  # Parsed and evaluated node by node: a request or mask config is data, never code.
  result = expressions.evaluate(expression, {'x': x, 'y': y, 'z': z})
  try:
    return np.broadcast_to(np.asarray(result, dtype=bool), tuple(int(s) for s in size))
  except ValueError as e:
    raise errors.FFNError(f'mask coordinate_expression {expression!r} gives shape '
                     f'{np.shape(result)}, expected one broadcastable to {tuple(size)}') from e


def _read_volume_box(volume, corner: np.ndarray, size: np.ndarray) -> np.ndarray:
  """The (c, z, y, x) contents of a zyx box (inside the volume) of a 3-D or 4-D volume."""
  box = tuple(slice(int(c), int(c) + int(s)) for c, s in zip(corner, size))
  if volume.ndim == 4:
    return np.asarray(volume[(slice(None),) + box])
  return np.asarray(volume[box])[np.newaxis]


def _channel_mask(channel_data: np.ndarray, config) -> np.ndarray:
  """The boolean mask one MaskChannelConfig selects from one channel."""
  if config.values:
    mask = np.isin(channel_data, np.asarray(list(config.values), dtype=np.uint64))
  else:
    mask = (channel_data >= config.min_value) & (channel_data <= config.max_value)
  return ~mask if config.invert else mask


def build_mask(masks: Iterable[Any], corner_zyx: ZYX, size_zyx: ZYX,
               mask_volume_map: Optional[dict] = None, image: Optional[np.ndarray] = None,
               alignment: Optional[align.Alignment] = None,
               open_mask_volume: Callable = volumes.open_decorated) -> Optional[np.ndarray]:
  """The OR of the boolean zyx masks the MaskConfigs give for a box; None when `masks` is empty.

  `masks` are MaskConfig protos. `mask_volume_map` caches opened mask volumes
  (opened by `open_mask_volume`) by serialised DecoratedVolume;
  `image` is the box's image, needed by `image` sources. Voxels of a volume
  mask that fall outside the mask volume read as 0.
  """
  size_zyx = tuple(int(s) for s in size_zyx)
  corner_zyx = tuple(int(c) for c in corner_zyx)
  if mask_volume_map is None:
    mask_volume_map = {}
  if alignment is None:
    alignment = align.Alignment(corner_zyx, size_zyx)
  src_corner, src_size = alignment.expand_bounds(corner_zyx, size_zyx, forward=False)

  final_mask = None
  for config in masks:
    config_mask = np.zeros(size_zyx, dtype=bool)
    source = config.WhichOneof('source')
    if source == 'coordinate_expression':
      expr_mask = _eval_coordinate_expression(config.coordinate_expression.expression,
                                              src_corner, src_size)
      config_mask |= alignment.align_and_crop(src_corner, expr_mask, corner_zyx, size_zyx)
    elif source in ('image', 'volume'):
      if source == 'image':
        if image is None:
          raise ValueError('a MaskConfig with an image source needs the image')
        channels = config.image.channels
        data = np.asarray(image)[np.newaxis]
        data_corner = src_corner
      else:
        channels = config.volume.channels
        key = config.volume.mask.SerializeToString()
        if key not in mask_volume_map:
          mask_volume_map[key] = open_mask_volume(config.volume.mask)
        volume = mask_volume_map[key]
        data_corner, data_size = clip_subvolume_to_bounds(src_corner, src_size, volume)
        data = _read_volume_box(volume, data_corner, data_size)
      for chan_config in channels:
        if not 0 <= chan_config.channel < data.shape[0]:
          raise errors.FFNError(f'mask channel {chan_config.channel} does not exist; the {source} '
                           f'mask has {data.shape[0]} channel(s)')
        channel_data = alignment.align_and_crop(data_corner, data[chan_config.channel],
                                                corner_zyx, size_zyx)
        config_mask |= _channel_mask(channel_data, chan_config)
    else:
      raise errors.FFNError(f'MaskConfig has no mask source set (expected volume, image or '
                       f'coordinate_expression): {config}')

    if config.invert:
      config_mask = ~config_mask
    final_mask = config_mask if final_mask is None else final_mask | config_mask
  return final_mask
