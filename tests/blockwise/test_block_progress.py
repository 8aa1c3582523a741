"""The blockwise progress log: a line per finished block, daisy's bars only on a terminal."""

from __future__ import annotations

import logging
import types

import numpy as np

from ffn.blockwise import grid as grid_lib
from ffn.blockwise import plan as plan_lib
from ffn.blockwise import progress_log
from ffn.blockwise import scheduling
from ffn.blockwise import stitching
from ffn.inference.io import results

import blockwise_fixtures
import synthetic_ffn


class _Clock:
  def __init__(self):
    self.now = 50.0

  def __call__(self):
    return self.now


def _state(total, completed=0, failed=0, skipped=0, processing=0):
  return types.SimpleNamespace(total_block_count=total, completed_count=completed,
                               failed_count=failed, skipped_count=skipped,
                               processing_count=processing)


def _messages(caplog):
  return [r.getMessage() for r in caplog.records if 'a block' in r.getMessage()]


def test_a_line_per_finished_block_with_done_failed_and_eta(caplog):
  clock = _Clock()
  log = progress_log.BlockLog({'inference': 0}, clock=clock)
  caplog.set_level(logging.INFO)
  log.on_start({'inference': _state(10, completed=2, skipped=2)})  # 2 done before this run.
  log.on_progress({'inference': _state(10, completed=2, skipped=2, processing=2)})
  clock.now += 60
  log.on_progress({'inference': _state(10, completed=4, skipped=2, processing=2)})
  clock.now += 30
  log.on_finish({'inference': _state(10, completed=5, skipped=2, failed=1)})
  # 2 blocks in 60 s: 7, then 6 left take 3 min 30 s, 3 min; then 3 in 90 s, 5 left: 2 min 30 s.
  assert _messages(caplog) == [
      'inference: a block done; 3/10 (30.0%) blocks done, 0 failed, ETA 3 min 30 s.',
      'inference: a block done; 4/10 (40.0%) blocks done, 0 failed, ETA 3 min 0 s.',
      'inference: a block done; 5/10 (50.0%) blocks done, 0 failed, ETA 2 min 30 s.',
      'inference: a block failed; 5/10 (50.0%) blocks done, 1 failed, ETA 2 min 30 s.']


def test_left_out_blocks_count_neither_as_done_nor_in_the_total(caplog):
  log = progress_log.BlockLog({'match': 6, 'resolve': 0}, clock=_Clock())
  caplog.set_level(logging.INFO)
  log.on_start({'match': _state(8, completed=6, skipped=6), 'resolve': _state(1)})
  log.on_progress({'match': _state(8, completed=7, skipped=6), 'resolve': _state(1)})
  assert _messages(caplog) == ['match: a block done; 1/2 (50.0%) blocks done, 0 failed, '
                               'ETA unknown.']  # No time has passed: no rate yet.


def test_the_calls_go_on_to_the_bars():
  calls = []
  bars = types.SimpleNamespace(**{name: (lambda states, name=name: calls.append(name))
                                  for name in ('on_start', 'on_progress', 'on_finish')})
  log = progress_log.BlockLog({}, bars=bars)
  states = {'write': _state(1)}
  log.on_start(states)
  log.on_progress(states)
  log.on_finish(states)
  assert calls == ['on_start', 'on_progress', 'on_finish']


def test_bars_only_on_a_terminal(monkeypatch):
  assert progress_log.bars_wanted(True) and not progress_log.bars_wanted(False)
  monkeypatch.setattr('sys.stderr', types.SimpleNamespace(isatty=lambda: False))
  assert not progress_log.bars_wanted(None)
  monkeypatch.setattr('sys.stderr', types.SimpleNamespace(isatty=lambda: True))
  assert progress_log.bars_wanted(None)


def test_daisy_bars_observer_exists():
  bars = progress_log.daisy_bars(plan_lib.TASKS)
  assert all(callable(getattr(bars, name)) for name in ('on_start', 'on_progress', 'on_finish'))


def test_stitch_run_logs_every_block_and_draws_no_bars_into_a_log(tmp_path, caplog, capfd):
  _, labels = synthetic_ffn.blob_volume(blockwise_fixtures.SHAPE_ZYX, blockwise_fixtures.blobs())
  grid = grid_lib.BlockGrid.from_xyz(blockwise_fixtures.region(),
                                     blockwise_fixtures.SUBVOLUME_XYZ,
                                     blockwise_fixtures.OVERLAP_XYZ)
  seg_dir = str(tmp_path / 'seg')
  for index in grid.indices():
    crop = labels[grid.box(index).to_slice()].astype(np.int64)
    results.save_subvolume(crop, {}, results.segmentation_path(seg_dir, grid.corner(index)))
  settings = stitching.StitchSettings(seg_dir, grid, f'{tmp_path}/out.h5:seg',
                                      min_overlap_size=20)
  caplog.set_level(logging.INFO)
  scheduling.run(plan_lib.BlockwisePlan(settings, None), num_workers=1)
  lines = _messages(caplog)
  n = len(grid)
  for task, total in (('match', n), ('resolve', 1), ('write', n)):
    done = [line for line in lines if line.startswith(f'{task}: a block done; ')]
    assert len(done) == total, lines
    assert done[-1] == (f'{task}: a block done; {total}/{total} (100.0%) blocks done, '
                        '0 failed, ETA 0 s.')
  err = capfd.readouterr().err
  assert 'block/s' not in err and '\r' not in err  # tqdm's bars.
