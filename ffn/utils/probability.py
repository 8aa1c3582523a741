"""Probability <-> logit conversions shared by training and inference."""

from __future__ import annotations

import numpy as np
from scipy import special


def logit(p):
  """log(p / (1 - p)), for scalars or arrays of probabilities."""
  return special.logit(p)


def expit(x):
  """The logistic sigmoid 1 / (1 + exp(-x)), the inverse of `logit`."""
  return special.expit(x)


def logit_float32(p: float) -> np.float32:
  """`logit(p)` as a float32 scalar, the dtype of every seed and canvas array."""
  return np.float32(special.logit(np.float64(p)))
