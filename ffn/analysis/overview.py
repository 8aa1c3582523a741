"""A PNG overview of a segmentation: xy/xz/yz planes through a point, segments coloured on grey.

Each label volume gets one panel laid out by `concat_ortho_planes` (yx top-left,
zx below, zy to the right); several label volumes (e.g. a segmentation and its
groundtruth) are placed side by side, separated by a white gap.
"""

from __future__ import annotations

import io
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from ffn.utils import atomic
from ffn.utils import errors
from ffn.utils import ortho_plane_visualization

_GAP = 4  # Pixels of white between panels.
_NO_IMAGE_GREY = 96


def label_colors(ids: np.ndarray) -> np.ndarray:
  """Distinct, stable RGB colours (float32 in [0, 1], shape ids.shape + (3,)) for label ids."""
  ids = np.asarray(ids).astype(np.uint64)
  # A multiplicative hash spreads neighbouring ids (1, 2, 3, ...) over the colour wheel.
  with np.errstate(over='ignore'):
    mixed = ids * np.uint64(0x9E3779B97F4A7C15)
    mixed ^= mixed >> np.uint64(29)
    mixed *= np.uint64(0xBF58476D1CE4E5B9)
    mixed ^= mixed >> np.uint64(32)
  hue = (mixed & np.uint64(0xFFFF)).astype(np.float64) / 65536.0
  saturation = 0.65 + 0.35 * ((mixed >> np.uint64(16)) & np.uint64(0xFF)).astype(np.float64) / 255
  value = 0.8 + 0.2 * ((mixed >> np.uint64(24)) & np.uint64(0xFF)).astype(np.float64) / 255
  # HSV -> RGB.
  h6 = hue * 6.0
  sector = np.floor(h6).astype(np.int64) % 6
  f = h6 - np.floor(h6)
  p = value * (1 - saturation)
  q = value * (1 - saturation * f)
  t = value * (1 - saturation * (1 - f))
  choices_r = [value, q, p, p, t, value]
  choices_g = [t, value, value, q, p, p]
  choices_b = [p, p, t, value, value, q]
  rgb = np.stack([np.choose(sector, choices_r), np.choose(sector, choices_g),
                  np.choose(sector, choices_b)], axis=-1)
  return rgb.astype(np.float32)


def _grey_uint8(plane: np.ndarray) -> np.ndarray:
  """An image plane as uint8 grey: uint8 kept, other types stretched min..max."""
  if plane.dtype == np.uint8:
    return plane
  plane = plane.astype(np.float64)
  lo, hi = np.nanmin(plane), np.nanmax(plane)
  if hi <= lo:
    return np.zeros(plane.shape, dtype=np.uint8)
  return np.clip((plane - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)


def blend(grey: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
  """uint8 RGB: `grey` (uint8 2-D) with non-zero `labels` painted on top at opacity `alpha`."""
  rgb = np.repeat(grey[..., np.newaxis].astype(np.float32), 3, axis=-1)
  painted = labels != 0
  if np.any(painted):
    ids, inverse = np.unique(labels[painted], return_inverse=True)
    colours = label_colors(ids)[inverse] * 255.0
    rgb[painted] = (1.0 - alpha) * rgb[painted] + alpha * colours
  return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _caption(panel: np.ndarray, corner_yx: tuple[int, int], lines: Sequence[str]) -> None:
  """Writes `lines` in white into `panel` (in place) below and right of `corner_yx`, as fit."""
  from PIL import ImageDraw  # pylint: disable=g-import-not-at-top
  canvas = Image.fromarray(panel)
  draw = ImageDraw.Draw(canvas)
  y, x = corner_yx
  height, width = panel.shape[:2]
  for line in lines:
    if y + 4 + 12 > height or x + 4 + draw.textlength(line) > width:
      break  # Too small a corner: leave the rest out rather than clip it.
    draw.text((x + 4, y + 4), line, fill=(255, 255, 255))
    y += 14
  panel[...] = np.asarray(canvas)


def render_overview(image: Optional[np.ndarray], label_volumes: Sequence[np.ndarray],
                    center_zyx: Optional[Sequence[int]] = None, alpha: float = 0.5,
                    zoom: int = 1, titles: Optional[Sequence[str]] = None,
                    origin_xyz: Sequence[int] = (0, 0, 0)) -> np.ndarray:
  """uint8 RGB overview: one ortho-plane panel per label volume (zyx, same shape), side by side.

  `image` (zyx, same shape) is the grey background; None gives flat grey.
  `titles` (one per label volume) are written into each panel's empty corner,
  with the centre's coordinates plus `origin_xyz` (the volume's global position).
  """
  if titles is not None and len(titles) != len(label_volumes):
    raise ValueError(f'got {len(titles)} titles for {len(label_volumes)} label volumes')
  if not label_volumes:
    raise ValueError('render_overview needs at least one label volume')
  shape = label_volumes[0].shape
  for volume in list(label_volumes) + ([image] if image is not None else []):
    if volume.shape[:3] != shape or volume.ndim != 3:
      raise errors.FFNError(f'overview volumes must all be 3-D with shape {shape}, '
                       f'got {volume.shape}')
  if center_zyx is None:
    center_zyx = tuple(s // 2 for s in shape)
  center_zyx = tuple(int(c) for c in center_zyx)
  if any(not 0 <= c < s for c, s in zip(center_zyx, shape)):
    raise errors.FFNError(f'overview centre {center_zyx} (zyx) is outside the volume {shape}')
  if not 0 <= alpha <= 1 or zoom < 1:
    raise ValueError(f'alpha must be in [0, 1] and zoom >= 1, got {alpha}, {zoom}')

  if image is None:
    grey_planes = [np.full(p.shape, _NO_IMAGE_GREY, np.uint8)
                   for p in ortho_plane_visualization.cut_ortho_planes(label_volumes[0],
                                                                       center_zyx)]
  else:
    grey_planes = [_grey_uint8(np.asarray(p))
                   for p in ortho_plane_visualization.cut_ortho_planes(image, center_zyx)]

  panels = []
  for i, labels in enumerate(label_volumes):
    label_planes = ortho_plane_visualization.cut_ortho_planes(labels, center_zyx)
    coloured = [blend(g, np.asarray(l), alpha) for g, l in zip(grey_planes, label_planes)]
    panel = ortho_plane_visualization.concat_ortho_planes(coloured)
    if zoom > 1:
      panel = np.repeat(np.repeat(panel, zoom, axis=0), zoom, axis=1)
    if titles is not None:
      # The corner right of the zx plane and below the zy plane is otherwise empty.
      corner = ((shape[1] + 1) * zoom, (shape[2] + 1) * zoom)
      x, y, z = (c + o for c, o in zip(center_zyx[::-1], origin_xyz))
      _caption(panel, corner, [titles[i], 'xy top left', 'xz below', 'zy right',
                               f'x={x}', f'y={y}', f'z={z}'])
    panels.append(panel)

  height = panels[0].shape[0]
  gap = np.full((height, _GAP * zoom, 3), 255, dtype=np.uint8)
  pieces = []
  for i, panel in enumerate(panels):
    if i:
      pieces.append(gap)
    pieces.append(panel)
  return np.concatenate(pieces, axis=1)


def png_bytes(rgb: np.ndarray, palette: bool = False) -> bytes:
  """An RGB uint8 array encoded as PNG; `palette` trades exact colours for a 256-colour file."""
  picture = Image.fromarray(rgb)
  if palette:
    # About half the size of a true-colour PNG; no dithering, which would defeat compression.
    picture = picture.quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                               dither=Image.Dither.NONE)
  buffer = io.BytesIO()
  picture.save(buffer, format='PNG', optimize=True)
  return buffer.getvalue()


def write_overview_png(path: str, image: Optional[np.ndarray],
                       label_volumes: Sequence[np.ndarray], palette: bool = False,
                       **options) -> np.ndarray:
  """Renders `render_overview(image, label_volumes, **options)` and writes it atomically as PNG."""
  rgb = render_overview(image, label_volumes, **options)
  atomic.atomic_write_bytes(path, png_bytes(rgb, palette=palette))
  return rgb
