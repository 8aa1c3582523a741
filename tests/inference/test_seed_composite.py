"""seed.ReverseCoords, seed.SequentialPolicies and the lookup of seed policies by name."""

from __future__ import annotations

import json

from google.protobuf import text_format
import numpy as np
import pytest

from ffn.inference import inference_pb2
from ffn.inference.policies import seed
from ffn.inference.policies import seed_intensity
from ffn.inference.request import plan

from seed_reference import FakeCanvas
from seed_reference import smooth_image


def _grid(shape, step, offsets, margin):
  """PolicyGrid3d's seeds by hand: each offset's grid in zyx order, inside the margin."""
  out = []
  for o in offsets:
    for z in range(o, shape[0], step):
      for y in range(o, shape[1], step):
        for x in range(o, shape[2], step):
          if all(m <= c < s - m for c, s, m in zip((z, y, x), shape, margin)):
            out.append((z, y, x))
  return out


def test_reverse_coords():
  image = np.zeros((6, 11, 13), np.float32)
  canvas = FakeCanvas(image, margin=(1, 2, 2))
  policy = seed.ReverseCoords(canvas, policy_to_reverse='PolicyGrid3d', step=3,
                                      offsets=[0, 1], corner=(0, 0, 0))
  expected = _grid(image.shape, 3, (0, 1), (1, 2, 2))
  assert len(expected) > 5 and list(policy) == expected[::-1]


def test_sequential_policies_chain_and_resume():
  image = smooth_image(shape=(8, 12, 14))
  canvas = FakeCanvas(image, margin=(1, 1, 1))
  members = [['PolicyGrid3d', {'step': 4, 'offsets': [1]}],
             ['PolicyDenseSeeds', {'threshold': 1.0}]]
  policy = seed.SequentialPolicies(canvas, members, corner=(0, 0, 0),
                                           subvol_size=image.shape)
  dense = [tuple(c) for c in np.argwhere(image > 1.0)
           if all(1 <= v < s - 1 for v, s in zip(c, image.shape))]
  expected = _grid(image.shape, 4, (1,), (1, 1, 1)) + dense
  seeds = list(policy)
  assert len(dense) > 3 and seeds == expected

  # The state saved after three seeds (with the third still in progress) resumes there.
  first = seed.SequentialPolicies(canvas, members)
  taken = [next(first) for _ in range(3)]
  resumed = seed.SequentialPolicies(canvas, members)
  resumed.set_state(first.get_state(previous=True))
  assert taken[:2] + list(resumed) == expected


def test_sequential_policies_can_nest_and_reverse():
  image = np.zeros((6, 9, 9), np.float32)
  canvas = FakeCanvas(image)
  policy = seed.SequentialPolicies(canvas, [
      ['ReverseCoords', {'policy_to_reverse': 'PolicyGrid2d', 'step': 4, 'offsets': [0]}],
      ['PolicyGrid3d', {'step': 5, 'offsets': [0]}]])
  grid2d = [(z, y, x) for z in range(6) for y in (0, 4, 8) for x in (0, 4, 8)]
  grid3d = [(z, y, x) for z in (0, 5) for y in (0, 5) for x in (0, 5)]
  assert list(policy) == grid2d[::-1] + grid3d


@pytest.mark.parametrize('make,message', [
    (lambda c: seed.ReverseCoords(c, policy_to_reverse='PolicyNope'), 'PolicyNope'),
    (lambda c: seed.SequentialPolicies(c, [['PolicyNope', {}]]), 'PolicyNope'),
    (lambda c: seed.SequentialPolicies(c, [['PolicyMax']]), 'PolicyMax'),
])
def test_bad_member_policies(make, message):
  with pytest.raises(ValueError, match=message):
    make(FakeCanvas(np.zeros((3, 4, 5), np.float32)))


def test_every_policy_resolves_by_name_from_the_request():
  names = {
      'PolicyPeaks': seed.PolicyPeaks, 'PolicyPeaks2d': seed.PolicyPeaks2d,
      'PolicyFillEmptySpace': seed.PolicyFillEmptySpace, 'PolicyMax': seed.PolicyMax,
      'PolicyGrid3d': seed.PolicyGrid3d, 'PolicyGrid2d': seed.PolicyGrid2d,
      'PolicyInvertOrigins': seed.PolicyInvertOrigins,
      'PolicyMaxPeaks': seed_intensity.PolicyMaxPeaks,
      'PolicyImagePeaks3D2D': seed_intensity.PolicyImagePeaks3D2D,
      'PolicyImagePeaks2DDisk': seed_intensity.PolicyImagePeaks2DDisk,
      'PolicyDenseSeeds': seed_intensity.PolicyDenseSeeds,
      'ReverseCoords': seed.ReverseCoords,
      'SequentialPolicies': seed.SequentialPolicies,
  }
  resolved = lambda text: plan.seed_policy(
      text_format.Parse(text, inference_pb2.InferenceRequest())).cls
  needed = {'ReverseCoords': {'policy_to_reverse': 'PolicyPeaks'},
            'SequentialPolicies': {'policies': [['PolicyMax', {}]]},
            'PolicyInvertOrigins': {'segmentation_dir': 'results'}}
  for name, cls in names.items():
    args = json.dumps(json.dumps(needed.get(name, {})))
    assert resolved(f'seed_policy: "{name}" seed_policy_args: {args}') is cls
    assert getattr(seed, name) is cls  # Upstream code looks policies up on the module.
  assert resolved('') is seed.PolicyPeaks
  with pytest.raises(ValueError, match='InferenceRequest.seed_policy .*PolicyNope'):
    resolved('seed_policy: "PolicyNope"')
