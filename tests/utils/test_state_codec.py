"""Checkpoint state as tagged JSON: every type comes back as it went in."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from ffn.utils import state_codec

Pair = collections.namedtuple('Pair', ['a', 'b'])


def test_round_trip_keeps_types():
  value = {
      3: Pair((1, 2, 3), np.float32(0.5)),
      'q': collections.deque([(0.25, (1, 2, 3)), (np.float64(0.125), (4, 5, 6))]),
      'done': {(1, 2, 3), (4, 5, 6)},
      'arr': np.arange(6, dtype=np.uint16).reshape(2, 3),
      'list': [None, True, 1.0000000000000002, float('inf'), -7],
      (1, 2): frozenset({1}),
  }
  got = state_codec.loads(state_codec.dumps(value, {'Pair': Pair}), {'Pair': Pair})
  assert type(got[3]) is Pair and got[3] == value[3] and type(got[3].b) is np.float32
  assert type(got['q']) is collections.deque and list(got['q']) == list(value['q'])
  assert type(got['q'][1][0]) is np.float64
  assert got['done'] == value['done'] and got[(1, 2)] == frozenset({1})
  assert got['arr'].dtype == np.uint16 and got['arr'].shape == (2, 3)
  np.testing.assert_array_equal(got['arr'], value['arr'])
  assert got['list'] == value['list']


def test_refuses_objects_and_unknown_names():
  with pytest.raises(state_codec.StateCodecError, match='object'):
    state_codec.dumps(object())
  with pytest.raises(state_codec.StateCodecError, match='Pair'):
    state_codec.loads(state_codec.dumps(Pair(1, 2), {'Pair': Pair}))
  with pytest.raises(state_codec.StateCodecError):
    state_codec.loads('{"os.system": 1}')
