"""Checkpoint loading: upstream's fib25 model reproduces its reference outputs."""

import numpy as np
import pytest

from conftest import FIB25_CHECKPOINT, REPO_ROOT
from ffn.training import checkpoint
from ffn.training import import_util

FIB25_ARGS = '{"depth": 12, "fov_size": [33, 33, 33], "deltas": [8, 8, 8]}'


@pytest.fixture(scope='module')
def fib25_model():
  model = import_util.build_model('convstack_3d.ConvStack3DFFNModel', FIB25_ARGS)
  step = checkpoint.restore_model(model, str(FIB25_CHECKPOINT))
  assert step == 27465036
  return model


@pytest.mark.parametrize('image_key,logits_key', [('image', 'logits'),
                                                  ('real_image', 'real_logits')])
def test_fib25_reproduces_upstream_logits(fib25_model, image_key, logits_key):
  ref = np.load(REPO_ROOT / 'tests' / 'fixtures' / 'fib25_forward_ref.npz')
  logits = fib25_model.predict_logits(ref[image_key], ref['seed']).numpy()
  assert logits.shape == ref[logits_key].shape
  assert np.max(np.abs(logits - ref[logits_key])) <= 1e-4


def test_fib25_normalisation_matches_fixture():
  ref = np.load(REPO_ROOT / 'tests' / 'fixtures' / 'fib25_forward_ref.npz')
  for key in ('image', 'real_image'):
    expected = (ref[key + '_uint8'].astype(np.float32) - 128) / 33
    np.testing.assert_allclose(ref[key], expected, atol=1e-6)


def test_our_checkpoint_round_trip_and_format_detection(tmp_path):
  args = {'fov_size': [7, 5, 3], 'deltas': [2, 1, 1], 'depth': 2, 'features': 4}
  model = import_util.build_model('convstack_3d.ConvStack3DFFNModel', args)
  model.global_step.assign(17)
  manager = checkpoint.make_manager(checkpoint.make_checkpoint(model), str(tmp_path))
  saved = manager.save(checkpoint_number=17)
  assert saved.endswith('model.ckpt-17')
  assert checkpoint.is_object_based(saved)
  assert not checkpoint.is_object_based(str(FIB25_CHECKPOINT))

  other = import_util.build_model('convstack_3d.ConvStack3DFFNModel', args)
  assert checkpoint.restore_model(other, str(tmp_path)) == 17  # A directory means latest.
  for name, var in model.named_variables().items():
    np.testing.assert_array_equal(var.numpy(), other.named_variables()[name].numpy())
  image = np.random.default_rng(0).normal(size=(2, 3, 5, 7, 1)).astype(np.float32)
  seed = np.zeros_like(image)
  np.testing.assert_allclose(model.predict_logits(image, seed),
                             other.predict_logits(image, seed), atol=1e-6)


def test_shape_mismatch_names_the_variable(tmp_path):
  model = import_util.build_model('convstack_3d.ConvStack3DFFNModel',
                                  {'fov_size': [9, 9, 9], 'deltas': [2, 2, 2],
                                   'depth': 12, 'features': 16})
  with pytest.raises(checkpoint.CheckpointError, match='seed_update/conv0_a/weights'):
    checkpoint.restore_model(model, str(FIB25_CHECKPOINT))
  deeper = import_util.build_model('convstack_3d.ConvStack3DFFNModel',
                                   {'fov_size': [9, 9, 9], 'deltas': [2, 2, 2], 'depth': 13})
  with pytest.raises(checkpoint.CheckpointError, match='conv12_a'):
    checkpoint.restore_model(deeper, str(FIB25_CHECKPOINT))


def test_missing_and_corrupt_checkpoints(tmp_path):
  model = import_util.build_model('convstack_3d.ConvStack3DFFNModel',
                                  {'fov_size': [5, 5, 5], 'deltas': [1, 1, 1], 'depth': 1})
  with pytest.raises(checkpoint.CheckpointError, match='does not exist'):
    checkpoint.restore_model(model, str(tmp_path / 'model.ckpt-5'))
  with pytest.raises(checkpoint.CheckpointError, match='no checkpoint found'):
    checkpoint.restore_model(model, str(tmp_path))
  (tmp_path / 'bad.index').write_bytes(b'not a checkpoint')
  with pytest.raises(checkpoint.CheckpointError, match='cannot read'):
    checkpoint.restore_model(model, str(tmp_path / 'bad'))


def test_shallower_model_is_refused_naming_the_first_extra_variable():
  # Upstream's checkpoint (depth 12) would load into depth 9 and segment nothing.
  shallower = import_util.build_model('convstack_3d.ConvStack3DFFNModel',
                                      {'fov_size': [33, 33, 33], 'deltas': [8, 8, 8], 'depth': 9})
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"holds variable 'seed_update/conv10_a/biases' \(shape \[32\]\), "
                     r'which the model does not have \(12 such\)'):
    checkpoint.restore_model(shallower, str(FIB25_CHECKPOINT))


def test_truncated_data_names_the_checkpoint(tmp_path):
  prefix = tmp_path / 'cut'
  (tmp_path / 'cut.index').write_bytes(
      (FIB25_CHECKPOINT.parent / (FIB25_CHECKPOINT.name + '.index')).read_bytes())
  data = (FIB25_CHECKPOINT.parent / (FIB25_CHECKPOINT.name + '.data-00000-of-00001')).read_bytes()
  (tmp_path / 'cut.data-00000-of-00001').write_bytes(data[:len(data) // 3])
  model = import_util.build_model('convstack_3d.ConvStack3DFFNModel', FIB25_ARGS)
  with pytest.raises(checkpoint.CheckpointError, match=rf"from checkpoint '{prefix}': the "
                     'checkpoint is truncated or corrupt'):
    checkpoint.restore_model(model, str(prefix))


def test_optimizer_state_must_be_the_optimizers(tmp_path):
  from ffn.training import optimizer as optimizer_lib  # pylint: disable=g-import-not-at-top
  model = import_util.build_model('convstack_3d.ConvStack3DFFNModel',
                                  {'fov_size': [5, 5, 5], 'deltas': [1, 1, 1], 'depth': 1})
  variables = list(model.named_variables().values())
  adam = optimizer_lib.Optimizer(optimizer_lib.OptimizerConfig(optimizer='adam'), variables)
  prefix = checkpoint.make_checkpoint(model, adam).write(str(tmp_path / 'model.ckpt-1'))
  checkpoint.check_optimizer_state(adam, prefix)
  momentum = optimizer_lib.Optimizer(optimizer_lib.OptimizerConfig(optimizer='momentum'),
                                     variables)
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"another optimizer than --optimizer momentum \(it lacks "
                     r"'slots/0/momentum' and it holds 'beta1_power'\)"):
    checkpoint.check_optimizer_state(momentum, prefix)
