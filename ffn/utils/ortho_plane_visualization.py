"""Axis-orthogonal cuts through a 3-D volume, laid out as one 2-D picture.

Volumes are zyx (optionally with a trailing channel axis). The three planes
through a point are returned in the order yx, zx, zy; `concat_ortho_planes`
puts yx top-left, zx below it and zy (transposed so that its y runs down, like
the yx panel's) to the right, with 1-pixel gaps between panels.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy.special import expit


def cut_ortho_planes(vol: np.ndarray, center: Optional[Sequence[int]] = None,
                     cross_hair: bool = False) -> list[np.ndarray]:
  """Returns the [yx, zx, zy] planes of a zyx(c) volume through `center` (zyx)."""
  if center is None:
    center = tuple(int(s) // 2 for s in vol.shape[:3])
  center = tuple(int(c) for c in center)
  if len(center) != 3:
    raise ValueError(f'center must have 3 (zyx) coordinates, got {center!r}')

  planes = []
  for axis in range(3):
    index = [slice(None)] * 3
    index[axis] = center[axis]
    plane = vol[tuple(index)]
    if cross_hair:
      # Darken the two lines through the centre; a copy keeps `vol` untouched.
      plane = np.array(plane, copy=True)
      in_plane_axes = [a for a in range(3) if a != axis]
      for plane_axis, vol_axis in enumerate(in_plane_axes):
        line = [slice(None)] * plane.ndim
        line[plane_axis] = center[vol_axis]
        plane[tuple(line)] *= 0.5
    planes.append(plane)
  return planes


def concat_ortho_planes(planes: Sequence[np.ndarray]) -> np.ndarray:
  """Arranges [yx, zx, zy] planes into one image: yx | zy^T over zx, 1-px separators."""
  if len(planes) != 3:
    raise ValueError(f'expected 3 planes (yx, zx, zy), got {len(planes)}')
  yx, zx, zy = planes
  zy_t = np.swapaxes(zy, 0, 1)  # (y, z): its rows line up with the yx panel's rows.
  height_yx, width_yx = yx.shape[:2]
  height_zx, width_zx = zx.shape[:2]
  if width_zx != width_yx or zy_t.shape[0] != height_yx or zy_t.shape[1] != height_zx:
    raise ValueError(
        'planes do not come from one volume: shapes yx=%s zx=%s zy=%s' %
        (yx.shape, zx.shape, zy.shape))

  out = np.zeros((height_yx + 1 + height_zx, width_yx + 1 + zy_t.shape[1]) + yx.shape[2:],
                 dtype=yx.dtype)
  out[:height_yx, :width_yx] = yx
  out[height_yx + 1:, :width_yx] = zx
  out[:height_yx, width_yx + 1:] = zy_t
  return out


def normalize_image(img2d: np.ndarray, act: Optional[str] = None) -> np.ndarray:
  """Maps a signed 2-D image to float32 RGB in [0, 1]: negatives red, positives blue, NaN green.

  `act` picks the scaling: None divides negatives by the minimum and positives
  by the maximum; 'tanh' squashes magnitudes with tanh; 'sig' puts the logistic
  of the value into both red and blue.
  """
  if act not in (None, 'tanh', 'sig'):
    raise ValueError(f"act must be None, 'tanh' or 'sig', got {act!r}")
  img = np.asarray(img2d, dtype=np.float64)
  if img.ndim != 2:
    raise ValueError(f'expected a 2-D image, got shape {img.shape}')
  nan = np.isnan(img)
  img = np.where(nan, 0.0, img)
  lo, hi = img.min(initial=0.0), img.max(initial=0.0)

  rgb = np.zeros(img.shape + (3,), dtype=np.float32)
  negative = np.minimum(img, 0.0)
  positive = np.maximum(img, 0.0)
  if act == 'tanh':
    rgb[..., 0] = np.tanh(-negative)
    rgb[..., 2] = np.tanh(positive)
  elif act == 'sig':
    rgb[..., 0] = expit(img)
    rgb[..., 2] = rgb[..., 0]
  else:
    # An all-positive (or all-negative) image leaves the other channel dark.
    if lo < 0:
      rgb[..., 0] = negative / lo
    if hi > 0:
      rgb[..., 2] = positive / hi
  rgb[nan] = (0.0, 1.0, 0.0)
  return rgb
