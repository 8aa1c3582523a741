"""Writes a saved segmentation (npz with key `segmentation`, z, y, x) as one PNG per z slice.

Two renderings:
  * `color` (default): RGB, black for 0, and a colour per id derived from the id
    alone, so an object keeps its colour across slices and runs;
  * `gray16`: 16-bit greyscale holding the ids themselves (ids must be < 65536),
    for tools that need the labels back.

  python -m ffn.scripts.npz_to_png --output_dir pngs/ results/fib25/training2/0/0/seg-0_0_0.npz
"""

from __future__ import annotations

import os

import numpy as np

from ffn.utils import atomic
from ffn.utils import errors
from ffn.utils import safe_pickle

MODES = ('color', 'gray16')


class NpzToPngError(errors.FFNError):
  """A segmentation that cannot be written as PNGs."""


def id_colors(ids: np.ndarray) -> np.ndarray:
  """A deterministic RGB colour (uint8, shape ids.shape + (3,)) per id; black for 0."""
  ids = np.asarray(ids).astype(np.uint64)
  # Multiplicative hashing spreads neighbouring ids over distant colours.
  mixed = ids * np.uint64(0x9E3779B97F4A7C15)
  mixed ^= mixed >> np.uint64(29)
  mixed *= np.uint64(0xBF58476D1CE4E5B9)
  mixed ^= mixed >> np.uint64(32)
  rgb = np.stack([(mixed >> np.uint64(s)) & np.uint64(0xFF) for s in (0, 8, 16)], axis=-1)
  # Keep colours away from black so that objects stand out from the background.
  rgb = (rgb.astype(np.uint16) * 200 // 255 + 55).astype(np.uint8)
  rgb[ids == 0] = 0
  return rgb


def render_slice(labels: np.ndarray, mode: str = 'color') -> np.ndarray:
  """One 2-D label slice as an RGB (color) or uint16 (gray16) image array."""
  if mode == 'color':
    unique, inverse = np.unique(labels, return_inverse=True)
    return id_colors(unique)[inverse.reshape(labels.shape)]
  if mode == 'gray16':
    return labels.astype(np.uint16)
  raise NpzToPngError(f'unknown mode {mode!r}; expected one of {MODES}')


def load_segmentation(npz_path: str) -> np.ndarray:
  """The 3-D `segmentation` array of a saved npz."""
  if not os.path.exists(npz_path):
    raise NpzToPngError(f'{npz_path!r} does not exist')
  with safe_pickle.load_npz(npz_path) as data:
    if 'segmentation' not in data:
      raise NpzToPngError(f'{npz_path!r} has no `segmentation` array (keys: {sorted(data)})')
    seg = data['segmentation']
  if seg.ndim != 3:
    raise NpzToPngError(f'segmentation in {npz_path!r} must be 3-D (z,y,x), got {seg.shape}')
  return seg


def npz_to_png(npz_path: str, output_dir: str, mode: str = 'color',
               prefix: str = 'slice_') -> list[str]:
  """Writes `<output_dir>/<prefix><z>.png` for every z slice; returns the paths."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if mode not in MODES:
    raise NpzToPngError(f'unknown mode {mode!r}; expected one of {MODES}')
  seg = load_segmentation(npz_path)
  if mode == 'gray16' and seg.size and (seg.min() < 0 or seg.max() > 0xFFFF):
    raise NpzToPngError(f'gray16 needs ids in 0..65535, but {npz_path!r} holds ids '
                        f'{int(seg.min())}..{int(seg.max())}; use --mode color')
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise NpzToPngError(f'--output_dir {output_dir!r} exists and is not a directory')
  created_dir = not os.path.exists(output_dir)
  os.makedirs(output_dir, exist_ok=True)
  digits = max(4, len(str(seg.shape[0] - 1)))
  paths = []
  try:
    for z in range(seg.shape[0]):
      path = os.path.join(output_dir, f'{prefix}{z:0{digits}d}.png')
      with atomic.atomic_path(path, suffix='.png') as tmp:
        Image.fromarray(render_slice(seg[z], mode)).save(tmp, format='PNG')
      paths.append(path)
  except BaseException:
    # A stack with slices missing is no stack: take back this run's slices.
    for path in paths:
      os.remove(path)
    if created_dir:
      os.rmdir(output_dir)
    raise
  return paths
