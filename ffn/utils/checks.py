"""Checks of the numbers that flags, request fields and files give: finite and in their range.

One `Range` type says what is allowed and how to say it; `check_number` and
`check_numbers` raise an FFNError naming the setting, the value and the range.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Optional, Sequence

from ffn.utils import errors


@dataclasses.dataclass(frozen=True)
class Range:
  """An interval of allowed values (`None`: no limit that side); never NaN or infinite."""
  low: Optional[float] = None
  high: Optional[float] = None
  low_open: bool = False
  high_open: bool = False
  integer: bool = False

  def __contains__(self, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
      return False
    if isinstance(value, numbers.Integral):
      value = int(value)  # Compared exactly: 2**64 - 1 is no float.
    else:
      value = float(value)
      if not math.isfinite(value) or (self.integer and not value.is_integer()):
        return False
    if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
      return False
    if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
      return False
    return True

  def describe(self) -> str:
    """'a finite number in (0, 1)', 'an integer >= 1' and the like."""
    kind = 'an integer' if self.integer else 'a finite number'
    if self.low is not None and self.high is not None:
      left, right = '(' if self.low_open else '[', ')' if self.high_open else ']'
      return f'{kind} in {left}{_number(self.low)}, {_number(self.high)}{right}'
    if self.low is not None:
      return f'{kind} {">" if self.low_open else ">="} {_number(self.low)}'
    if self.high is not None:
      return f'{kind} {"<" if self.high_open else "<="} {_number(self.high)}'
    return kind


def _number(value: float) -> str:
  return str(int(value)) if float(value).is_integer() else repr(float(value))


# The ranges most settings use.
ANY = Range()
PROBABILITY = Range(0, 1, low_open=True, high_open=True)  # A threshold on a probability.
UNIT = Range(0, 1)
POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
POSITIVE_INT = Range(1, integer=True)
NON_NEGATIVE_INT = Range(0, integer=True)
UINT64 = Range(0, 2**64 - 1, integer=True)


def check_number(value: Any, name: str, valid: Range = ANY):
  """`value` if it lies in `valid`; else FFNError naming `name`, the value and the range."""
  if value not in valid:
    raise errors.FFNError(f'{name} is {errors.shown(value)}; expected {valid.describe()}')
  return value


def check_numbers(values: Sequence[Any], name: str, valid: Range = ANY) -> tuple:
  """Every one of `values` checked as `check_number` does; the message names the first bad one."""
  for value in values:
    if value not in valid:
      raise errors.FFNError(f'{name} is {errors.cut(",".join(str(v) for v in values))}: '
                            f'{errors.shown(value)} is not {valid.describe()}')
  return tuple(values)
