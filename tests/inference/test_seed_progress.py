"""The inference progress line: seeds done of total, FOVs/s and an ETA where the policy knows."""

from __future__ import annotations

import logging

from google.protobuf import text_format
import numpy as np
import pytest

from ffn.inference import inference_pb2
from ffn.inference.inference_utils import Counters
from ffn.inference.policies import seed_base
from ffn.inference.request import progress
from ffn.inference.request import runner as runner_lib

import synthetic_ffn


class _Clock:
  def __init__(self):
    self.now = 1000.0

  def __call__(self):
    return self.now


@pytest.fixture
def clock():
  return _Clock()


def _lines(caplog):
  return [r.getMessage() for r in caplog.records if 'subvolume' in r.getMessage()]


def test_line_has_seeds_rate_and_eta(clock, caplog):
  counters = Counters()
  seeds = [0, 400]
  logger = progress.ProgressLogger(counters, (0, 0, 0), interval_sec=30,
                                   seeds_done=lambda: tuple(seeds), clock=clock)
  caplog.set_level(logging.INFO)
  clock.now += 10
  logger.maybe_log()
  assert not _lines(caplog)  # Not yet 30 s.
  clock.now += 30
  counters['inference-calls'].IncrementBy(200)
  counters['segments-created'].IncrementBy(3)
  seeds[0] = 100
  logger.maybe_log()
  # 100 seeds in 40 s: the other 300 in 120 s.
  assert _lines(caplog) == ['Progress subvolume (0, 0, 0): seeds 100/400 (25.0%), 200 FOVs '
                            '(5.00 FOVs/s), 3 objects, 0 voxels segmented, ETA 2 min 0 s.']


def test_unknown_seed_total_says_eta_unknown(clock, caplog):
  counters = Counters()
  logger = progress.ProgressLogger(counters, (0, 0, 0), clock=clock)
  caplog.set_level(logging.INFO)
  clock.now += 4
  counters['inference-calls'].IncrementBy(10)
  logger.log()
  line, = _lines(caplog)
  assert 'seeds' not in line and '10 FOVs (2.50 FOVs/s)' in line
  assert line.endswith(', ETA unknown.')


def test_restored_run_meters_seeds_from_the_restored_count(clock, caplog):
  counters = Counters()
  counters['inference-calls'].IncrementBy(500)
  seeds = [0, 100]
  logger = progress.ProgressLogger(counters, (0, 0, 0), seeds_done=lambda: tuple(seeds),
                                   clock=clock)
  logger.restart()
  caplog.set_level(logging.INFO)
  seeds[0] = 50  # As restored from the checkpoint.
  logger.log()
  clock.now += 10
  seeds[0] = 60
  counters['inference-calls'].IncrementBy(20)
  logger.log()
  first, second = _lines(caplog)
  assert first.endswith('ETA unknown.')  # Nothing done in this run yet.
  assert '520 FOVs (2.00 FOVs/s)' in second and second.endswith('ETA 40 s.')


def test_seeds_done_of_policies():
  class Listed(seed_base.BaseSeedPolicy):
    def init_coords(self):
      self.coords = np.zeros((7, 3), np.int64)

  class OnTheFly(seed_base.BaseSeedPolicy):
    def __next__(self):
      raise StopIteration()

  canvas = type('C', (), {})()
  listed = Listed(canvas)
  assert seed_base.seeds_done(listed) is None  # Not listed before the first seed.
  listed.coords, listed.idx = np.zeros((7, 3), np.int64), 3
  assert seed_base.seeds_done(listed) == (3, 7)
  fly = OnTheFly(canvas)
  fly.coords = np.zeros((7, 3), np.int64)
  assert seed_base.seeds_done(fly) is None


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  return synthetic_ffn.write_blob_setup(tmp_path_factory.mktemp('progress'))


def test_finished_line_of_a_run_counts_every_seed(setup, tmp_path, caplog):
  spec, ckpt, labels = setup
  text = synthetic_ffn.request_text(spec, ckpt, str(tmp_path), seed_policy='"PolicyGrid3d"',
                                    seed_policy_args=r'"{\"step\": 4, \"offsets\": [2]}"')
  runner = runner_lib.Runner()
  runner.start(text_format.Parse(text, inference_pb2.InferenceRequest()))
  caplog.set_level(logging.INFO)
  try:
    canvas = runner.run((0, 0, 0), labels.shape)
  finally:
    runner.stop_executor()
  total = canvas.seeds_done()[1]
  assert total > 0 and canvas.seeds_done() == (total, total)
  finished = [line for line in _lines(caplog) if line.startswith('Finished subvolume')]
  assert len(finished) == 1
  assert f'seeds {total}/{total} (100.0%)' in finished[0] and ' FOVs/s), ' in finished[0]
