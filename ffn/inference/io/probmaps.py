"""Probability maps on disk: `.prob` npz files holding a quantised uint8 map (key `qprob`)."""

from __future__ import annotations

import numpy as np

from ffn.utils import atomic
from ffn.utils import errors
from ffn.utils import safe_pickle


def quantize_probability(prob: np.ndarray) -> np.ndarray:
  """A probability map as uint8: bucket 1..255 of 255 equal bins over [0, 1], NaN as 0."""
  prob = np.asarray(prob)
  quantized = np.digitize(prob, np.linspace(0.0, 1.0, 255))
  # digitize puts NaN past the last edge; 0 (never produced otherwise) marks it.
  quantized[np.isnan(prob)] = 0
  return quantized.astype(np.uint8)


def dequantize_probability(quantized: np.ndarray) -> np.ndarray:
  """The float32 probabilities of a `quantize_probability` map, with 0 back to NaN."""
  quantized = np.asarray(quantized)
  prob = ((quantized - 0.5) / 255).astype(np.float32)
  prob[quantized == 0] = np.nan
  return prob


def save_probability_map(prob: np.ndarray, path: str, quantized: bool = False) -> None:
  """Writes a `.prob` npz (key `qprob`) of a probability map, quantising it unless `quantized`."""
  prob = np.asarray(prob)
  if quantized:
    if prob.dtype != np.uint8:
      raise ValueError(f'a quantised probability map must be uint8, got {prob.dtype}')
    qprob = prob
  else:
    if not np.issubdtype(prob.dtype, np.floating):
      raise ValueError(f'expected a float probability map, got {prob.dtype}; '
                       'pass quantized=True for a uint8 map')
    qprob = quantize_probability(prob)
  with atomic.atomic_open(path, 'wb') as f:
    np.savez_compressed(f, qprob=qprob)


def load_quantized_probability(path: str) -> np.ndarray:
  """The 3-D uint8 `qprob` array of a `.prob` file; ValueError naming the file for anything else."""
  with safe_pickle.load_npz(path) as data:
    if 'qprob' not in data:
      raise errors.FFNError(f'{path} is not an FFN probability map (no qprob key; has {data.files})')
    qprob = data['qprob']
  if qprob.dtype != np.uint8 or qprob.ndim != 3:
    raise errors.FFNError(f"{path} (entry 'qprob') is a {qprob.ndim}-D {qprob.dtype} array; a "
                     'probability map is a 3-D uint8 array (quantised probabilities)')
  return qprob


def load_probability_map(path: str) -> np.ndarray:
  """The dequantised float32 probabilities of a `.prob` file (NaN where never predicted)."""
  return dequantize_probability(load_quantized_probability(path))
