"""Stacks a directory of PNG slices into one HDF5 dataset (z, y, x[, c]).

Slices are ordered by the numbers in their file names ("natural" order, so
slice_2.png comes before slice_10.png). Usage, as upstream (PNGs in the current
directory, dataset `raw`):

  python -m ffn.scripts.png_to_h5 out.h5
  python -m ffn.scripts.png_to_h5 --input_dir slices/ --dataset raw out.h5
"""

from __future__ import annotations

import glob
import os
import re
from typing import Sequence

import numpy as np

from ffn.utils import errors
from ffn.utils import volumes


class PngStackError(errors.FFNError):
  """PNG slices that cannot be stacked."""


def natural_sort_key(name: str) -> list:
  """Sort key comparing runs of digits as numbers: a2 < a10."""
  parts = re.split(r'(\d+)', os.path.basename(name))
  return [(0, int(p), '') if p.isdigit() else (1, 0, p) for p in parts]


def list_png_files(input_dir: str, pattern: str = '*.png') -> list[str]:
  """PNG paths in `input_dir` matching `pattern`, in natural order."""
  paths = glob.glob(os.path.join(glob.escape(input_dir), pattern))
  return sorted(paths, key=natural_sort_key)


def read_png_stack(paths: Sequence[str]) -> np.ndarray:
  """Reads the slices into one (z, y, x[, c]) array; all must share shape and mode."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if not paths:
    raise PngStackError('no PNG files to stack')
  slices = []
  for path in paths:
    with Image.open(path) as image:
      data = np.asarray(image)
    if slices and (data.shape != slices[0].shape or data.dtype != slices[0].dtype):
      raise PngStackError(
          f'{path} is {data.shape} {data.dtype}, but {paths[0]} is '
          f'{slices[0].shape} {slices[0].dtype}; all slices must match')
    slices.append(data)
  return np.stack(slices)


def png_to_h5(input_dir: str, output_path: str, dataset: str = 'raw',
              pattern: str = '*.png') -> tuple[int, ...]:
  """Writes the PNG stack of `input_dir` to `output_path:dataset` (gzip); returns its shape.

  An existing HDF5 file keeps its other datasets.
  """
  paths = list_png_files(input_dir, pattern)
  if not paths:
    raise PngStackError(f'no files matching {pattern!r} in {input_dir!r}')
  stack = read_png_stack(paths)
  spec = volumes.VolumeSpec(output_path, dataset)
  with volumes.create_volume(spec, stack.shape, stack.dtype) as out:
    out[...] = stack
  return stack.shape
