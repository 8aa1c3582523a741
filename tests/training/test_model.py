"""FFNModel base behaviour and the ConvStack3D graph."""

import numpy as np
import pytest
import tensorflow as tf

from ffn.training import import_util
from ffn.training import model as model_lib
from ffn.training.models import convstack_3d


def test_shifts_are_upstream_order():
  shifts = model_lib.make_shifts((1, 2, 3))
  assert len(shifts) == 26 and (0, 0, 0) not in shifts
  assert shifts[:3] == [(-1, -2, -3), (-1, -2, 0), (-1, -2, 3)]  # z varies fastest.
  assert shifts[6] == (-1, 2, -3) and shifts[13] == (0, 0, 3) and shifts[-1] == (1, 2, 3)


def test_update_seed_pads_smaller_update_centrally():
  seed = tf.zeros([1, 5, 4, 3, 1])
  update = tf.ones([1, 2, 2, 1, 1])
  out = model_lib.update_seed(seed, update).numpy()[0, ..., 0]
  expected = np.zeros((5, 4, 3))
  expected[1:3, 1:3, 1:2] = 1  # Pads (1, 2), (1, 1), (1, 1): the smaller half first.
  np.testing.assert_array_equal(out, expected)
  np.testing.assert_array_equal(model_lib.update_seed(seed + 2, seed + 1), seed + 3)


def test_loss_is_weighted_mean_and_rejects_nan():
  logits = np.array([[-2.0, 0.5], [3.0, 1.0]], np.float32)
  labels = np.array([[0.05, 0.95], [0.95, 0.05]], np.float32)
  weights = np.array([[1, 0], [1, 1]], np.float32)
  xent = np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
  loss = model_lib.sigmoid_pixelwise_loss(logits, labels, weights)
  assert float(loss) == pytest.approx(np.mean(xent * weights), rel=1e-6)
  with pytest.raises(tf.errors.InvalidArgumentError, match='Invalid loss'):
    model_lib.sigmoid_pixelwise_loss(logits * np.nan, labels, weights)


def test_clip_is_elementwise():
  grads = [tf.constant([-3.0, 0.2, 0.9]), tf.constant([[0.69, -0.71]])]
  clipped = model_lib.clip_gradients(grads)
  np.testing.assert_allclose(clipped[0], [-0.7, 0.2, 0.7])
  np.testing.assert_allclose(clipped[1], [[0.69, -0.7]])


def test_convstack_geometry_and_parameters():
  model = convstack_3d.ConvStack3DFFNModel(fov_size=[33, 33, 33], deltas=[8, 8, 8], depth=12)
  assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == 638433
  assert len(model.named_variables()) == 50
  assert model.info.deltas == (8, 8, 8) and model.info.input_image_size == (33, 33, 33)
  assert all(v == 0 for v in model.conv5_b.bias.numpy())
  # The float32 samples can round up to the float32 nearest the float64 limit.
  limit = np.float32(np.sqrt(6 / (27 * 32 + 27 * 32)))
  kernel = model.conv3_a.kernel.numpy()
  assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.9 * limit


def test_convstack_is_residual_in_logit_space_with_image_first():
  model = convstack_3d.ConvStack3DFFNModel(fov_size=[7, 5, 3], deltas=[1, 1, 1], depth=2,
                                           features=4)
  rng = np.random.default_rng(0)
  image = rng.normal(size=(2, 3, 5, 7, 1)).astype(np.float32)
  seed = rng.normal(size=(2, 3, 5, 7, 1)).astype(np.float32)
  logits = model.predict_logits(image, seed).numpy()
  assert logits.shape == (2, 3, 5, 7, 1)
  update = model.compute_update(np.concatenate([image, seed], -1)).numpy()
  np.testing.assert_allclose(logits, seed + update, atol=1e-6)
  # Zeroing the image input channel's weights must leave the seed channel in charge.
  model.conv0_a.kernel.assign(tf.tensor_scatter_nd_update(
      model.conv0_a.kernel, [[i, j, k, 0] for i in range(3) for j in range(3)
                             for k in range(3)], tf.zeros([27, 4])))
  np.testing.assert_allclose(model.predict_logits(image * 0 + 5, seed),
                             model.predict_logits(image, seed), atol=1e-6)


def test_features_sequence_must_fit_residuals():
  model = convstack_3d.ConvStack3DFFNModel([5, 5, 5], [1, 1, 1], depth=2, features=[8, 6, 3, 6])
  assert model.conv1_a.kernel.shape == (3, 3, 3, 6, 3)
  with pytest.raises(ValueError, match='conv1_b'):
    convstack_3d.ConvStack3DFFNModel([5, 5, 5], [1, 1, 1], depth=2, features=[8, 6, 3, 5])
  with pytest.raises(ValueError, match='needs 4'):
    convstack_3d.ConvStack3DFFNModel([5, 5, 5], [1, 1, 1], depth=2, features=[8, 6])


def test_build_model_resolution_and_errors():
  model = import_util.build_model('convstack_3d.ConvStack3DFFNModel',
                                  '{"fov_size": [5, 5, 5], "deltas": [1, 1, 1], "depth": 1}',
                                  batch_size=3)
  assert model.batch_size == 3
  full = import_util.build_model('ffn.training.models.convstack_3d.ConvStack3DFFNModel',
                                 {'fov_size': [5, 5, 5], 'deltas': [1, 1, 1], 'depth': 1})
  assert isinstance(full, convstack_3d.ConvStack3DFFNModel)
  with pytest.raises(ValueError, match="unknown model 'convstack_3d.Nope'"):
    import_util.build_model('convstack_3d.Nope', '{}')
  with pytest.raises(ValueError, match='unexpected keyword'):
    import_util.build_model('convstack_3d.ConvStack3DFFNModel',
                            '{"fov_size": [5, 5, 5], "deltas": [1, 1, 1], "depht": 3}')
  with pytest.raises(ValueError, match='fov_size'):
    import_util.build_model('convstack_3d.ConvStack3DFFNModel',
                            '{"fov_size": [5, 5], "deltas": [1, 1, 1]}')
  with pytest.raises(ValueError, match='not valid JSON'):
    import_util.build_model('convstack_3d.ConvStack3DFFNModel', '{depth: 3}')
