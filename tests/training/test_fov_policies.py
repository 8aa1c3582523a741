"""Upstream HEAD's FOV policies: fixed_offsets_window, no_offsets, the checked max_pred_offsets."""

import numpy as np
import pytest

from ffn.training import examples
from ffn.training import trainer
from ffn.training.model import ModelInfo
from ffn.utils import errors
from ffn.utils import probability

INFO = ModelInfo(deltas=(2, 2, 2), pred_mask_size=(5, 5, 5), input_seed_size=(5, 5, 5),
                 input_image_size=(5, 5, 5))
THRESHOLD = float(probability.logit(0.9))


def test_policy_names_and_upstream_head_aliases():
  assert examples.resolve_fov_policy('fixed_window') == 'fixed_offsets_window'
  assert examples.resolve_fov_policy('no_step') == 'no_offsets'
  for name in examples.FOV_POLICIES:
    assert examples.resolve_fov_policy(name) == name
  with pytest.raises(errors.FFNError, match="fov_policy 'sideways' is not one of"):
    examples.resolve_fov_policy('sideways')


def test_training_sizes_of_the_new_policies():
  fixed = examples.training_sizes(INFO, 'fixed', 1)
  assert examples.training_sizes(INFO, 'fixed_offsets_window', 1) == fixed
  assert examples.training_sizes(INFO, 'no_offsets', 1) == fixed
  checked = examples.training_sizes(INFO, 'max_pred_offsets', 1)
  assert checked == examples.training_sizes(INFO, 'max_pred_moves', 1)
  assert checked.image == (13, 13, 13) and checked.eval == (9, 9, 9)


def test_no_offsets_yields_the_origin_once():
  moves = []
  assert list(examples.no_offsets(lambda *m: moves.append(m))) == [(0, 0, 0)]
  assert moves == [(True, True, (0, 0, 0))]


def _canvas(shape_zyx=(9, 9, 9)):
  return examples.make_seed_canvas(shape_zyx, 0.05)


def test_fixed_offsets_window_accepts_a_shell_voxel_near_the_target():
  canvas = _canvas()
  centre = np.array(canvas.shape[:3]) // 2
  # Target +2 in x; a voxel on the x = +2 face, 1 off in y, crosses threshold.
  canvas[tuple(centre + [0, 1, 2])] = 3.0
  shifts = [(2, 0, 0), (-2, 0, 0)]
  assert list(examples.fixed_offsets(canvas, shifts, THRESHOLD)) == [(0, 0, 0)]
  window = examples.fixed_offsets_window(canvas, shifts, THRESHOLD, INFO.deltas, radius=1)
  assert list(window) == [(0, 0, 0), (2, 0, 0)]
  # Beyond the radius it does not count.
  canvas[tuple(centre + [0, 1, 2])] = -3.0
  canvas[tuple(centre + [0, 2, 2])] = 3.0
  window = examples.fixed_offsets_window(canvas, shifts, THRESHOLD, INFO.deltas, radius=1)
  assert list(window) == [(0, 0, 0)]
  # Nor does a voxel off the +-deltas shell (inside the cuboid).
  canvas[tuple(centre + [0, 2, 2])] = -3.0
  canvas[tuple(centre + [0, 0, 1])] = 3.0
  window = examples.fixed_offsets_window(canvas, shifts, THRESHOLD, INFO.deltas, radius=1)
  assert list(window) == [(0, 0, 0)]


def test_fixed_offsets_window_is_clipped_to_the_canvas_not_wrapped():
  # A radius reaching past the canvas edge: upstream's slice would start at a
  # negative index and look at voxels on the far side (here: not this one).
  canvas = _canvas((5, 5, 5))
  canvas[2, 0, 0] = 3.0  # On the shell (|dy| = |dx| = 2), 2 from the target (-2, 0, 0).
  window = examples.fixed_offsets_window(canvas, [(-2, 0, 0)], THRESHOLD, INFO.deltas,
                                         radius=3)
  assert list(window) == [(0, 0, 0), (-2, 0, 0)]


def test_fixed_offsets_window_records_wanted_from_the_labels():
  canvas = _canvas()
  labels = np.full((7, 7, 7, 1), 0.05, np.float32)  # Smaller than the canvas, same centre.
  labels[3, 4, 5] = 0.95  # On the x = +2 face, y + 1.
  moves = []
  window = examples.fixed_offsets_window(canvas, [(2, 0, 0), (0, -2, 0)], THRESHOLD,
                                         INFO.deltas, 1, labels, lambda *m: moves.append(m))
  assert list(window) == [(0, 0, 0)]
  assert moves == [(False, True, (0, 0, 0)), (True, False, (2, 0, 0)),
                   (False, False, (0, -2, 0))]


def test_checked_max_pred_offsets_needs_the_labels_to_hold_the_object():
  sizes = examples.training_sizes(INFO, 'max_pred_offsets', 1)
  canvas = _canvas(sizes.canvas[::-1])
  labels = np.full(sizes.label[::-1] + (1,), 0.05, np.float32)
  centre = np.array(canvas.shape[:3]) // 2
  moves = []
  offsets = examples.max_pred_offsets(canvas, INFO, sizes, THRESHOLD, labels,
                                      lambda *m: moves.append(m), check_moves=True)
  assert next(offsets) == (0, 0, 0)  # The origin needs the seed only.
  canvas[tuple(centre + [0, 0, 2])] = 3.0   # Predicted: +x face and -y face.
  canvas[tuple(centre + [0, -2, 0])] = 3.0
  labels[tuple(centre + [0, -2, 0])] = 0.95  # Only -y is in the object.
  assert list(offsets) == [(0, -2, 0)]
  # +x was refused as unwanted: recorded (wanted False, valid True).
  assert (False, True, (0, 0, 0)) in moves[1:]
  # Unchecked (upstream 2019), both are taken.
  canvas = _canvas(sizes.canvas[::-1])
  offsets = examples.max_pred_offsets(canvas, INFO, sizes, THRESHOLD, labels)
  assert next(offsets) == (0, 0, 0)
  canvas[tuple(centre + [0, 0, 2])] = 3.0
  canvas[tuple(centre + [0, -2, 0])] = 3.0
  assert sorted(offsets)[:2] == [(0, -2, 0), (2, 0, 0)]


@pytest.mark.parametrize('policy', ['fixed_offsets_window', 'no_offsets', 'max_pred_offsets'])
def test_batch_feeder_runs_each_new_policy(policy):
  sizes = examples.training_sizes(INFO, policy, 1)
  shape = sizes.image[::-1] + (1,)
  example = lambda: {'image': np.zeros(shape, np.float32),
                     'labels': np.full(sizes.label[::-1] + (1,), 0.95, np.float32),
                     'weights': np.ones(sizes.label[::-1] + (1,), np.float32)}
  feeder = examples.BatchFeeder(example, INFO, batch_size=2, fov_policy=policy)
  for _ in range(3):
    seed, image, labels, weights = feeder.next_batch()
    assert seed.shape == image.shape == labels.shape == (2, 5, 5, 5, 1)
    feeder.update(np.full(seed.shape, 4.0, np.float32))
    offsets = {slot.offset for slot in feeder.slots}
    if policy == 'no_offsets':  # A new example at every step, each at its centre.
      assert offsets == {(0, 0, 0)}


def test_train_config_resolves_aliases_and_checks_the_window_radius():
  base = dict(train_coords='c', data_volumes='a:b', label_volumes='a:c', model_name='m',
              model_args='{}')
  assert trainer.TrainConfig(**base, fov_policy='fixed_window').fov_policy == \
      'fixed_offsets_window'
  assert trainer.TrainConfig(**base, fov_policy='no_step').fov_policy == 'no_offsets'
  with pytest.raises(errors.FFNError, match="fov_window_radius is 4 but fov_policy is 'fixed'"):
    trainer.TrainConfig(**base, fov_window_radius=4)
  with pytest.raises(errors.FFNError, match='fov_window_radius is -1'):
    trainer.TrainConfig(**base, fov_policy='fixed_window', fov_window_radius=-1)
  with pytest.raises(errors.FFNError, match="fov_policy 'bogus'"):
    trainer.TrainConfig(**base, fov_policy='bogus')
