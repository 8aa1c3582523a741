"""Number checks (finite, in range) and how long values appear in error lines."""

from __future__ import annotations

import numpy as np
import pytest

from ffn.utils import checks
from ffn.utils import errors


@pytest.mark.parametrize('value,valid,inside', [
    (0.5, checks.PROBABILITY, True), (0.0, checks.PROBABILITY, False),
    (1.0, checks.PROBABILITY, False), (float('nan'), checks.ANY, False),
    (float('inf'), checks.NON_NEGATIVE, False), (-float('inf'), checks.ANY, False),
    (np.float32(0.25), checks.UNIT, True), (1.0, checks.UNIT, True),
    (0, checks.POSITIVE, False), (1e-30, checks.POSITIVE, True),
    (3, checks.POSITIVE_INT, True), (2.5, checks.POSITIVE_INT, False),
    (4.0, checks.POSITIVE_INT, True), (True, checks.ANY, False), ('1', checks.ANY, False),
    (2**64 - 1, checks.UINT64, True), (2**64, checks.UINT64, False),  # Exact, not float.
    (-1, checks.UINT64, False), (np.int64(-3), checks.Range(integer=True), True),
])
def test_range_membership(value, valid, inside):
  assert (value in valid) is inside


def test_check_number_names_setting_value_and_range():
  assert checks.check_number(0.3, 'x', checks.PROBABILITY) == 0.3
  with pytest.raises(errors.FFNError, match=r'^--threshold is nan; expected a finite number '
                     r'in \(0, 1\)$'):
    checks.check_number(float('nan'), '--threshold', checks.PROBABILITY)
  with pytest.raises(errors.FFNError, match=r'--size is 4,0,4: 0 is not an integer >= 1'):
    checks.check_numbers((4, 0, 4), '--size', checks.POSITIVE_INT)


def test_describe():
  assert checks.Range(0, 0.95, low_open=True).describe() == 'a finite number in (0, 0.95]'
  assert checks.NON_NEGATIVE_INT.describe() == 'an integer >= 0'
  assert checks.Range(high=1).describe() == 'a finite number <= 1'


def test_long_values_are_cut_with_their_length():
  value = 'a' * 150 + 'b' * 100_000 + 'z' * 50
  cut = errors.cut(value)
  assert len(cut) < 300 and '[100,200 characters]' in cut
  assert cut.startswith('a' * 120) and cut.endswith('z' * 40)
  assert errors.cut('short') == 'short'
  line = errors.shorten_line(f'model {value} is unknown; expected a.B')
  assert line.endswith('is unknown; expected a.B') and len(line) < 350
  assert len(errors.shorten_line('word ' * 10_000)) <= errors.MAX_LINE_CHARS + 40
