"""Histogram matching of subvolume images to a reference (InferenceRequest.reference_histogram).

The reference is an `.npz` file whose `lut` array is the table that
`inference_utils.compute_histogram_lut` computes from a reference image.
"""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np

from ffn.inference import inference_utils
from ffn.utils import errors

_LUT_SIZE = 256


def load_reference_lut(path: str) -> np.ndarray:
  """The `lut` array of the reference histogram file, checked to have 256 entries."""
  field = 'InferenceRequest.reference_histogram'
  try:
    data = np.load(path)
  except (OSError, EOFError, ValueError) as e:
    raise errors.FFNError(f'{field} {path!r} cannot be read as an npz file: {e}') from e
  if not isinstance(data, np.lib.npyio.NpzFile):
    raise errors.FFNError(f'{field} {path!r} cannot be read as an npz file (it holds one array)')
  with data:
    if 'lut' not in data.files:
      raise errors.FFNError(f'{field} {path!r} has no "lut" array (it has {data.files}); '
                       'expected an npz written with lut=compute_histogram_lut(image)')
    lut = np.asarray(data['lut'])
  if lut.shape != (_LUT_SIZE,):
    raise errors.FFNError(f'{field} {path!r}: "lut" has shape {lut.shape}; '
                     f'expected ({_LUT_SIZE},)')
  return lut


def match_or_skip(image: np.ndarray, lut: np.ndarray, mask: Optional[np.ndarray],
                  corner) -> bool:
  """Matches `image` to `lut` in place, ignoring `mask`; False when it cannot be matched."""
  try:
    inference_utils.match_histogram(image, lut, mask=mask)
  except ValueError as e:
    # CLAHE's tiling fails on very small subvolumes; upstream skips those.
    logging.warning('Subvolume %r skipped: its histogram cannot be matched (%s).', corner, e)
    return False
  return True
