"""Progress wording: done of total, rate and ETA, with known and unknown totals."""

from __future__ import annotations

import pytest

from ffn.utils import progress


@pytest.mark.parametrize('seconds,text', [
    (0, '0 s'), (44.6, '45 s'), (60, '1 min 0 s'), (725, '12 min 5 s'),
    (3 * 3600 + 7 * 60 + 59, '3 h 7 min'), (2 * 86400 + 4 * 3600 + 5, '2 d 4 h'), (-3, '0 s')])
def test_duration(seconds, text):
  assert progress.duration(seconds) == text


def test_done_of_known_and_unknown_total():
  assert progress.done_of(3, 8) == '3/8 (37.5%)'
  assert progress.done_of(0, 0) == '0/0 (100.0%)'
  assert progress.done_of(3, None) == '3 of unknown total'


def test_eta_from_rate():
  assert progress.eta_seconds(20, 100, 4.0) == 20.0
  assert progress.eta(20, 100, 4.0) == 'ETA 20 s'
  assert progress.eta(0, 7200, 1.0) == 'ETA 2 h 0 min'


@pytest.mark.parametrize('done,total,rate', [
    (3, None, 1.0), (3, 10, None), (3, 10, 0.0), (3, 10, float('inf'))])
def test_eta_unknown(done, total, rate):
  assert progress.eta_seconds(done, total, rate) is None
  assert progress.eta(done, total, rate) == 'ETA unknown'


def test_eta_zero_once_done_even_without_rate():
  assert progress.eta(10, 10, None) == 'ETA 0 s'


class _Clock:
  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_rate_meter_counts_from_its_start():
  clock = _Clock()
  meter = progress.RateMeter(5, clock=clock)
  assert meter.rate(5) is None  # No time and nothing done yet.
  clock.now += 10
  assert meter.rate(5) is None
  assert meter.rate(25) == 2.0
  assert meter.elapsed() == 10
  meter.restart(25)
  clock.now += 4
  assert meter.rate(33) == 2.0
  assert progress.eta(33, 53, meter.rate(33)) == 'ETA 10 s'
