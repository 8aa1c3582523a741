"""The InferenceRequest turned into a typed plan, and the name/JSON resolvers behind it."""

from __future__ import annotations

import types

import numpy as np
import pytest
from google.protobuf import text_format

from ffn.inference import inference_pb2
from ffn.inference.policies import movement
from ffn.inference.policies import seed
from ffn.inference.request import plan
from ffn.utils import probability
from ffn.utils import resolve

import synthetic_ffn


def _request(**extra) -> inference_pb2.InferenceRequest:
  text = synthetic_ffn.request_text('vol.h5:raw', 'ckpt', '/tmp/out', **extra)
  return text_format.Parse(text, inference_pb2.InferenceRequest())


def test_canvas_options_are_float32_logits_and_zyx():
  options = inference_pb2.InferenceOptions(
      init_activation=0.95, pad_value=0.05, move_threshold=0.9, segment_threshold=0.6,
      min_segment_size=30, consistency_threshold=0.25, disco_seed_threshold=0.5)
  options.min_boundary_dist.x, options.min_boundary_dist.y, options.min_boundary_dist.z = 1, 2, 3
  got = plan.CanvasOptions.from_proto(options)
  for name, p in (('init_activation', 0.95), ('pad_value', 0.05), ('move_threshold', 0.9),
                  ('segment_threshold', 0.6)):
    value = getattr(got, name)
    assert value.dtype == np.float32
    # The proto holds float32; its logit is taken in float64, then rounded once.
    assert value == np.float32(probability.logit(np.float64(np.float32(p))))
  assert got.min_boundary_dist == (3, 2, 1)
  assert got.min_segment_size == 30
  assert got.consistency_threshold == pytest.approx(0.25)
  assert got.disco_seed_threshold == pytest.approx(0.5)


def test_from_request_unpacks_once():
  request = _request(seed_policy='"PolicyGrid3d"', seed_policy_args=r'"{\"step\": 4}"',
                     batch_size=3, shift_mask_scale=0)
  got = plan.from_request(request)
  assert got.output_dir == '/tmp/out'
  assert got.seed_policy == plan.PolicyPlan(seed.PolicyGrid3d, {'step': 4})
  assert got.movement_policy == plan.PolicyPlan(movement.FaceMaxMovementPolicy, {})
  assert got.batch_size == 3 and plan.from_request(request, batch_size=5).batch_size == 5
  assert got.concurrent_requests == 1 and got.shift_mask_scale == 1
  assert got.shift_mask is None and got.init_segmentation is None and not got.masks
  assert got.image_mean == np.float32(synthetic_ffn.IMAGE_MEAN)
  assert got.image.hdf5 == 'vol.h5:raw'
  with pytest.raises(AttributeError):
    got.batch_size = 7  # frozen


@pytest.mark.parametrize('field,value,message', [
    ('seed_policy', 'PolicyNope', 'seed_policy'),
    ('movement_policy_name', 'no_module.Nope', 'no_module.Nope'),
    ('movement_policy_args', '[1, 2]', "movement_policy_args '\\[1, 2\\]' must be a JSON object"),
    ('segmentation_output_dir', '', 'segmentation_output_dir'),
])
def test_from_request_names_the_bad_field(field, value, message):
  request = _request()
  setattr(request, field, value)
  with pytest.raises(ValueError, match=message):
    plan.from_request(request)
  request = _request()
  request.inference_options.move_threshold = 1.5
  with pytest.raises(ValueError, match='move_threshold is 1.5'):
    plan.from_request(request)


def test_movement_policy_fn_takes_zyx_deltas_and_the_logit_threshold():
  got = plan.from_request(_request())
  info = types.SimpleNamespace(deltas=(8, 6, 4))  # xyz
  policy = got.movement_policy_fn(info)(None)
  assert isinstance(policy, movement.FaceMaxMovementPolicy)
  assert tuple(policy.deltas) == (4, 6, 8)
  assert policy.score_threshold == float(got.canvas_options.move_threshold)


def test_resolve_class_short_dotted_and_wrong():
  base = seed.BaseSeedPolicy
  assert resolve.resolve_class('PolicyMax', seed, base, 'f') is seed.PolicyMax
  assert resolve.resolve_class('seed.PolicyMax', seed, base, 'f') is seed.PolicyMax
  assert resolve.resolve_class('ffn.inference.policies.seed.PolicyMax', seed, base, 'f') is seed.PolicyMax
  with pytest.raises(ValueError, match=r"f 'FaceMaxMovementPolicy' is not a BaseSeedPolicy"):
    resolve.resolve_class('FaceMaxMovementPolicy', seed, base, 'f')
  with pytest.raises(ValueError, match='PolicyMax'):  # the message lists the known ones
    resolve.resolve_class('movement.FaceMaxMovementPolicy', seed, base, 'f')


def test_json_object():
  assert resolve.parse_json_object('', 'f') == {}
  assert resolve.parse_json_object('{"a": [1]}', 'f') == {'a': [1]}
  with pytest.raises(ValueError, match='is not valid JSON'):
    resolve.parse_json_object('{a', 'f')
  with pytest.raises(ValueError, match='must be a JSON object'):
    resolve.parse_json_object('3', 'f')
