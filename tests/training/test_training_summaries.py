"""Training summaries from upstream HEAD: gradient histograms and FOV move/weight statistics."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ffn.training import checkpoint
from ffn.training import examples
from ffn.training import import_util
from ffn.training import model as model_lib
from ffn.training import optimizer as opt_lib
from ffn.training import tracker as tracker_lib
from ffn.training import trainer
from ffn.utils import probability
import training_fixtures

MODEL = 'convstack_3d.ConvStack3DFFNModel'
TINY = {'fov_size': [7, 7, 5], 'deltas': [1, 1, 1], 'depth': 1, 'features': 4}
_MOVE_TAGS = ('correct', 'missed', 'spurious')


def _event_tags(directory) -> dict[str, int]:
  """{tag: number of events} over the event files of `directory`."""
  tags = {}
  for path in tf.io.gfile.glob(f'{directory}/events.*'):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        tags[value.tag] = tags.get(value.tag, 0) + 1
  return tags


def test_training_writes_gradient_histograms_and_move_statistics(tmp_path):
  image, labels = training_fixtures.blob_volume(seed=0)
  data, label = training_fixtures.write_volumes(tmp_path, image, labels)
  coords = tmp_path / 'coords.tfr'
  training_fixtures.write_coordinates(coords, training_fixtures.object_centers(
      labels, (8, 8, 8), np.random.default_rng(0), 20))
  config = trainer.TrainConfig(
      train_coords=str(coords), data_volumes=data, label_volumes=label, model_name=MODEL,
      model_args=TINY, train_dir=str(tmp_path / 'train'), batch_size=2, max_steps=3,
      image_mean=128, image_stddev=33, random_seed=5, summary_rate_secs=0)
  assert trainer.train(config) == 3

  tags = _event_tags(config.train_dir)
  # The plain `loss` tag beside upstream's two names for the same value.
  assert tags.get('loss') == tags.get('pixel_loss') == tags.get('optimizer_loss') == 3
  model = import_util.build_model(MODEL, TINY)
  for name in model.named_variables():
    assert tags.get(checkpoint.upstream_name(name)) == 3, name
    assert tags.get(f'gradients/{checkpoint.upstream_name(name)}') == 3, name
  expected = ['fov/masked_voxel_fraction', 'fov/average_weight', 'moves/total']
  expected += [f'moves/all/{kind}' for kind in _MOVE_TAGS]
  # deltas (1, 1, 1): the six moves have radius 1; the origin, radius 0.
  for radius in (0, 1):
    expected += [f'moves/r={radius}/{kind}' for kind in _MOVE_TAGS + ('total',)]
  missing = [tag for tag in expected if tag not in tags]
  assert not missing


def test_train_step_returns_the_clipped_gradients_it_applied():
  model = import_util.build_model(MODEL, TINY, batch_size=2)
  reference = import_util.build_model(MODEL, TINY, batch_size=2)
  for a, b in zip(model.named_variables().values(), reference.named_variables().values()):
    b.assign(a)
  rng = np.random.default_rng(1)
  shape = (2, 5, 7, 7, 1)
  image, seed = (rng.normal(size=shape).astype(np.float32) for _ in range(2))
  labels = (rng.uniform(size=shape) > 0.5).astype(np.float32)
  weights = np.ones(shape, np.float32)
  optimizer = opt_lib.Optimizer(opt_lib.OptimizerConfig('sgd', 0.01),
                                list(model.named_variables().values()))
  step = trainer.make_train_step(model, optimizer, tf.distribute.get_strategy(), 2,
                                 return_gradients=True)
  _, _, _, grads = step(image, seed, labels, weights)

  variables = list(reference.named_variables().values())
  with tf.GradientTape() as tape:
    loss = model_lib.sigmoid_pixelwise_loss(reference(image, seed), labels, weights)
  expected = model_lib.clip_gradients(tape.gradient(loss, variables))
  assert len(grads) == len(expected)
  for got, want in zip(grads, expected):
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-7)
  # Without the option the step keeps its three results.
  assert len(trainer.make_train_step(reference, optimizer, tf.distribute.get_strategy(), 2)(
      image, seed, labels, weights)) == 3


def test_tracker_counts_moves_by_radius_and_fov_weights():
  tracker = tracker_lib.EvalTracker((3, 3, 3), shifts=[(2, 0, 0), (0, -2, 0), (1, 1, 1)])
  assert tracker.radii == [0, 1, 2]
  tracker.record_move(True, True, (0, 0, 0))
  tracker.record_move(True, False, (2, 0, 0))
  tracker.record_move(False, True, (0, -2, 0))
  tracker.record_move(True, True, (1, 1, 1))
  tracker.record_move(False, False, (2, 0, 0))   # Neither: not counted.
  with pytest.raises(ValueError, match='radius 3'):
    tracker.record_move(True, True, (3, 0, 0))
  weights = np.ones((2, 3, 3, 3, 1), np.float32)
  weights[0, 0] = 0
  weights[1, 1] = 0.5
  tracker.track_weights(weights)
  tracker.add_patch(np.full((3, 3, 3, 1), 0.95, np.float32),
                    np.full((3, 3, 3, 1), 3.0, np.float32), np.ones((3, 3, 3, 1), np.float32))
  scalars = tracker.scalars()
  assert scalars['moves/total'] == 4
  assert scalars['moves/all/correct'] == pytest.approx(2 / 4)
  assert scalars['moves/all/missed'] == pytest.approx(1 / 4)
  assert scalars['moves/all/spurious'] == pytest.approx(1 / 4)
  assert scalars['moves/r=2/missed'] == pytest.approx(0.5)
  assert scalars['moves/r=2/spurious'] == pytest.approx(0.5)
  assert scalars['moves/r=2/total'] == 2
  assert scalars['moves/r=1/correct'] == 1 and scalars['moves/r=0/correct'] == 1
  assert scalars['fov/masked_voxel_fraction'] == pytest.approx(9 / 54)
  assert scalars['fov/average_weight'] == pytest.approx((54 - 9 - 9 * 0.5) / 54)
  tracker.reset()
  assert tracker.moves.sum() == 0 and tracker.fov_voxels == 0


def test_fixed_offsets_record_wanted_and_executed_moves():
  canvas = examples.make_seed_canvas((5, 7, 11), 0.05)
  labels = np.full((5, 7, 11, 1), 0.05, np.float32)
  labels[2, 3, 5] = labels[2, 3, 7] = labels[2, 2, 5] = 0.95  # centre, x + 2, y - 1
  canvas[2, 2, 5] = canvas[3, 3, 5] = 5.0                        # y - 1, z + 1
  shifts = [(2, 0, 0), (0, -1, 0), (0, 0, 1)]
  recorded = []
  offsets = examples.fixed_offsets(canvas, shifts, probability.logit(0.9), labels,
                                   lambda *move: recorded.append(move))
  assert list(offsets) == [(0, 0, 0), (0, -1, 0), (0, 0, 1)]
  assert recorded == [(True, True, (0, 0, 0)), (True, False, (2, 0, 0)),
                      (True, True, (0, -1, 0)), (False, True, (0, 0, 1))]


def test_xla_compiled_step_trains_like_the_plain_one():
  models = [import_util.build_model(MODEL, TINY, batch_size=2) for _ in range(2)]
  for a, b in zip(*(m.named_variables().values() for m in models)):
    b.assign(a)
  rng = np.random.default_rng(2)
  shape = (2, 5, 7, 7, 1)
  image, seed = (rng.normal(size=shape).astype(np.float32) for _ in range(2))
  labels = (rng.uniform(size=shape) > 0.5).astype(np.float32)
  weights = np.ones(shape, np.float32)
  losses = []
  for model, jit in zip(models, (False, True)):
    optimizer = opt_lib.Optimizer(opt_lib.OptimizerConfig('sgd', 0.01),
                                  list(model.named_variables().values()))
    step = trainer.make_train_step(model, optimizer, tf.distribute.get_strategy(), 2,
                                   jit_compile=jit)
    losses.append([float(step(image, seed, labels, weights)[1]) for _ in range(3)])
  # The weights moved (the loss fell) and both compilations took the same steps.
  assert losses[0][2] < losses[0][0]
  np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
  for a, b in zip(*(m.named_variables().values() for m in models)):
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-6)
