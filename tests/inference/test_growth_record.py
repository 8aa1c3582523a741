"""A growth record stands in for the model calls while the course it recorded holds."""

from __future__ import annotations

import numpy as np

from ffn.inference.growing.growth_record import GrowthRecord


def _recorded(steps):
  """A record of `steps`: ('q', pos, free) reads and ('call', value) model outputs."""
  record = GrowthRecord()
  for step in steps:
    if step[0] == 'q':
      record.query(step[1], step[2])
    else:
      record.computed_output(np.full((2, 3), step[1], np.float32))
  return record


_COURSE = [('q', (1, 2, 3), True), ('call', 1.0), ('q', (1, 2, 5), True), ('call', 2.0),
           ('q', (1, 4, 5), False), ('call', 3.0)]


def test_replays_every_output_while_reads_agree():
  source = _recorded(_COURSE)
  replay = GrowthRecord(source)
  outputs = []
  for step in _COURSE:
    if step[0] == 'q':
      replay.query(step[1], step[2])
    else:
      outputs.append(replay.replayed_output())
  assert [float(o[0, 0]) for o in outputs] == [1.0, 2.0, 3.0]
  assert (replay.calls, replay.replayed, replay.computed) == (3, 3, 0)
  # The canvas changes outputs in place: the record's own stay as computed.
  outputs[0][...] = -1
  assert GrowthRecord(source).replayed_output()[0, 0] == 1.0
  # Replayed outputs are kept too: a replay of the replay has them all.
  assert [float(o[0, 0]) for o in replay.outputs] == [1.0, 2.0, 3.0]


def test_a_read_with_another_answer_ends_the_replay():
  replay = GrowthRecord(_recorded(_COURSE))
  replay.query((1, 2, 3), True)
  assert replay.replayed_output()[0, 0] == 1.0
  replay.query((1, 2, 5), False)  # Segmented now: the course may differ from here on.
  assert replay.replayed_output() is None
  replay.computed_output(np.zeros((2, 3), np.float32))
  replay.query((1, 4, 5), False)  # Agrees again, but the course has changed already.
  assert replay.replayed_output() is None
  assert (replay.calls, replay.replayed, replay.computed) == (2, 1, 1)


def test_a_read_at_another_position_ends_the_replay():
  replay = GrowthRecord(_recorded(_COURSE))
  replay.query((1, 2, 4), True)
  assert replay.replayed_output() is None


def test_a_longer_course_computes_past_the_record():
  replay = GrowthRecord(_recorded(_COURSE[:2]))
  replay.query((1, 2, 3), True)
  assert replay.replayed_output() is not None
  replay.query((1, 2, 5), True)
  assert replay.replayed_output() is None


def test_outputs_past_the_limit_are_not_kept_and_not_replayed():
  source = GrowthRecord(max_bytes=10)  # Two float32 outputs of one value each.
  for value in range(4):
    source.computed_output(np.full((1,), value, np.float32))
  assert [float(o[0]) for o in source.outputs] == [0.0, 1.0]
  assert source.nbytes == 8
  replay = GrowthRecord(source, max_bytes=0)
  assert [float(replay.replayed_output()[0]) for _ in range(2)] == [0.0, 1.0]
  assert replay.replayed_output() is None
  assert replay.outputs == []


def test_free_positions_are_the_reads_that_found_none():
  record = _recorded(_COURSE)
  np.testing.assert_array_equal(record.free_positions(), [[1, 2, 3], [1, 2, 5]])
  assert GrowthRecord().free_positions().shape == (0, 3)
