"""Tests of the FOV movement: face-max moves, the FIFO policy, restrictor, policy factory."""

from __future__ import annotations

import types

import numpy as np
import pytest

from ffn.inference import inference_pb2
from ffn.inference.policies import movement
from ffn.inference.request import plan
from ffn.utils import bounding_box
from ffn.utils import probability


def _moves(deltas, prob, threshold):
  return list(movement.get_scored_move_offsets(deltas, prob, threshold))


def test_face_max_offsets_inside_delta_window():
  prob = np.zeros((9, 11, 17), dtype=np.float32)  # centre (4, 5, 8)
  prob[0, 5, 8] = 0.95   # z- face (delta 4), at the face centre
  prob[4, 5, 14] = 0.99  # x+ face (delta 6), off-centre... y offset 0
  prob[6, 2, 2] = 0.97   # x- face, at y offset -3, z offset +2
  moves = _moves((4, 3, 6), prob, 0.9)
  assert moves == [(np.float32(0.95), (-4, 0, 0)), (np.float32(0.97), (2, -3, -6)),
                   (np.float32(0.99), (0, 0, 6))]


def test_face_max_ignores_voxels_outside_the_delta_window():
  prob = np.zeros((9, 11, 17), dtype=np.float32)
  prob[4, 0, 14] = 1.0  # on the x+ face plane but |dy| = 5 > delta 3
  assert _moves((4, 3, 6), prob, 0.5) == []


def test_face_max_first_occurrence_threshold_and_zero_delta():
  prob = np.zeros((5, 9, 9), dtype=np.float32)  # centre (2, 4, 4)
  prob[2, 4, 6] = 0.9  # x+ face: two equal maxima; C-order first is taken
  prob[3, 5, 6] = 0.9
  prob[2, 4, 2] = 0.5  # x- face below threshold
  # z delta 0: no z moves even though the z faces would be in range.
  prob[2, 2, 4] = 0.95  # y- face
  moves = _moves((0, 2, 2), prob, 0.8)
  assert moves == [(np.float32(0.95), (0, -2, 0)), (np.float32(0.9), (0, 0, 2))]
  # Threshold is inclusive.
  assert (np.float32(0.5), (0, 0, -2)) in _moves((0, 2, 2), prob, 0.5)


class _FakeGrower:
  """Just enough grower for the movement policy: an object map and a validity check."""

  def __init__(self, shape, move_threshold):
    self.object_map = np.full(shape, np.nan, dtype=np.float32)
    self.move_threshold = move_threshold
    self.checked = []

  def is_valid_pos(self, pos, ignore_move_threshold=False):
    self.checked.append(pos)
    return bool(self.object_map[pos] >= self.move_threshold)


def test_face_max_policy_fifo_sorted_and_quantised():
  grower = _FakeGrower((20, 30, 40), 0.5)
  policy = movement.FaceMaxMovementPolicy(grower, deltas=(2, 3, 4), score_threshold=0.5)
  start = (10, 15, 20)
  policy.reset_state(start)
  pred = np.zeros((5, 7, 9), dtype=np.float32)  # centre (2, 3, 4)
  pred[0, 3, 4] = 0.6   # z-
  pred[2, 6, 4] = 0.9   # y+
  pred[2, 3, 8] = 0.9   # x+  (same score as y+; larger offset sorts first)
  policy.update(pred, start)
  assert [c for _, c in policy.scored_coords] == [(10, 18, 20), (10, 15, 24), (8, 15, 20)]
  assert policy.done_rounded_coords == {(0, 0, 0)}

  grower.object_map[10, 18, 20] = 1.0
  grower.object_map[8, 15, 20] = 1.0
  # (10, 15, 24) is queued but its seed value is below threshold *now*: skipped.
  assert next(policy) == (10, 18, 20)
  assert next(policy) == (8, 15, 20)
  with pytest.raises(StopIteration):
    next(policy)

  # A position in an already visited quantised cell is skipped without a check.
  policy.append((1.0, (10, 16, 21)))  # rounds to (0, 0, 0): done
  grower.object_map[10, 16, 21] = 1.0
  grower.checked.clear()
  assert list(policy) == []
  assert grower.checked == []


def test_quantisation_is_centred_on_the_start():
  policy = movement.FaceMaxMovementPolicy(None, deltas=(4, 8, 8))
  policy.reset_state((10, 10, 10))
  assert policy.quantize_pos((10, 10, 10)) == (0, 0, 0)
  assert policy.quantize_pos((8, 6, 14)) == (0, 0, 1)
  assert policy.quantize_pos((7, 5, 2)) == (-1, -1, -1)
  assert policy.quantize_pos((14, 18, 10)) == (1, 1, 0)


def test_policy_state_round_trip():
  policy = movement.FaceMaxMovementPolicy(None, deltas=(1, 2, 2))
  policy.reset_state((3, 4, 5))
  policy.append((1.0, (3, 6, 5)))
  policy.done_rounded_coords.add((0, 0, 0))
  other = movement.FaceMaxMovementPolicy(None, deltas=(1, 2, 2))
  other.restore_state(policy.get_state())
  assert list(other.scored_coords) == [(1.0, (3, 6, 5))]
  assert other.done_rounded_coords == {(0, 0, 0)}
  assert other.quantize_pos((3, 4, 5)) == (0, 0, 0)


class _CustomPolicy(movement.BaseMovementPolicy):

  def __init__(self, canvas, deltas, score_threshold, extra=None):
    super().__init__(canvas, [], deltas)
    self.score_threshold = score_threshold
    self.extra = extra


def _request(**fields):
  request = inference_pb2.InferenceRequest(**fields)
  request.inference_options.move_threshold = 0.9
  return request


def test_get_policy_fn_defaults_custom_and_errors():
  info = types.SimpleNamespace(deltas=(8, 6, 4))  # xyz
  policy = plan.get_policy_fn(_request(), info)(None)
  assert isinstance(policy, movement.FaceMaxMovementPolicy)
  assert tuple(policy.deltas) == (4, 6, 8)
  assert policy.score_threshold == pytest.approx(probability.logit(np.float32(0.9)))

  policy = plan.get_policy_fn(
      _request(movement_policy_name='FaceMaxMovementPolicy',
               movement_policy_args='{"deltas": [1, 2, 3], "score_threshold": 0.5}'),
      info)(None)
  assert tuple(policy.deltas) == (1, 2, 3) and policy.score_threshold == 0.5

  policy = plan.get_policy_fn(
      _request(movement_policy_name=f'{__name__}._CustomPolicy',
               movement_policy_args='{"extra": 7}'), info)(None)
  assert isinstance(policy, _CustomPolicy) and policy.extra == 7

  with pytest.raises(ValueError, match='NoSuchPolicy'):
    plan.get_policy_fn(_request(movement_policy_name='NoSuchPolicy'), info)
  with pytest.raises(ValueError, match='movement_policy_args'):
    plan.get_policy_fn(_request(movement_policy_args='{deltas'), info)


def test_restrictor_masks():
  mask = np.zeros((4, 6, 8), dtype=bool)
  mask[1, 2, 3] = True
  seed_mask = np.zeros_like(mask)
  seed_mask[2, 3, 4] = True
  r = movement.MovementRestrictor(mask=mask, seed_mask=seed_mask)
  assert not r.is_valid_pos((1, 2, 3)) and r.is_valid_seed((1, 2, 3))
  assert r.is_valid_pos((2, 3, 4)) and not r.is_valid_seed((2, 3, 4))
  assert movement.MovementRestrictor().is_valid_pos((0, 0, 0))


def test_restrictor_shift_mask_window_and_scale():
  shape = (6, 10, 12)
  shift = np.zeros((2,) + shape, dtype=np.float32)
  shift[1, 3, 4, 5] = -5.0  # |shift| >= 4 at (z=3, y=4, x=5) in mask coordinates
  fov = bounding_box.BoundingBox(start=(-1, -1, 0), size=(3, 3, 1))  # xyz: z exactly pos
  r = movement.MovementRestrictor(shift_mask=shift, shift_mask_fov=fov,
                                  shift_mask_threshold=4)
  assert not r.is_valid_pos((3, 4, 5))
  assert not r.is_valid_pos((3, 5, 6))     # window reaches back 1 voxel in x and y
  assert r.is_valid_pos((3, 6, 5))         # 2 away in y
  assert r.is_valid_pos((2, 4, 5))         # z window is the position only

  # With scale 2, positions are divided by 2 in xy (z is not scaled).
  r2 = movement.MovementRestrictor(shift_mask=shift, shift_mask_fov=fov,
                                   shift_mask_threshold=4, shift_mask_scale=2)
  assert not r2.is_valid_pos((3, 8, 10))
  assert not r2.is_valid_pos((3, 9, 11))
  assert r2.is_valid_pos((3, 12, 10))
  # Below threshold: no restriction.
  r3 = movement.MovementRestrictor(shift_mask=shift, shift_mask_fov=fov,
                                   shift_mask_threshold=6)
  assert r3.is_valid_pos((3, 4, 5))


def _face_maxima_by_slicing(deltas_zyx, prob_map, threshold):
  """The definition: slice each ±delta face, take its first maximum in C order."""
  center = np.asarray(prob_map.shape) // 2
  window = [slice(c - d, c + d + 1) for c, d in zip(center, deltas_zyx)]
  moves = []
  for axis, delta in enumerate(deltas_zyx):
    for step in ((-delta, delta) if delta else ()):
      index = list(window)
      index[axis] = center[axis] + step
      face = prob_map[tuple(index)]
      in_plane = np.unravel_index(np.argmax(face), face.shape)
      score = face[in_plane]
      if score >= threshold:
        offset = [int(i - n // 2) for i, n in zip(in_plane, face.shape)]
        offset.insert(axis, step)
        if (score, tuple(offset)) not in moves:
          moves.append((score, tuple(offset)))
  return moves


@pytest.mark.parametrize('shape,deltas', [((33, 33, 33), (8, 8, 8)), ((5, 7, 9), (1, 2, 3)),
                                          ((9, 11, 13), (0, 2, 4))])
def test_face_maxima_match_their_definition_including_ties(shape, deltas):
  rng = np.random.default_rng(3)
  for trial in range(60):
    prob_map = rng.normal(size=shape).astype(np.float32)
    if trial % 3 == 1:
      prob_map = np.round(prob_map)  # Many ties: the first maximum must win.
    elif trial % 3 == 2:
      prob_map[:] = 1.0
    for threshold in (-5.0, 0.0, 1.5):
      got = list(movement.get_scored_move_offsets(deltas, prob_map, threshold))
      assert got == _face_maxima_by_slicing(deltas, prob_map, threshold)
      assert all(isinstance(score, np.float32) for score, _ in got)
