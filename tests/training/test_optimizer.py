"""Optimizers follow upstream's TF1 update rules; learning-rate decay."""

import numpy as np
import pytest
import tensorflow as tf

from ffn.training import optimizer as opt_lib


def _reference(kind, c, var, grads):
  """Two TF1-rule updates in numpy."""
  var = var.copy()
  s1 = np.full_like(var, {'adagrad': 0.1, 'rmsprop': 1.0}.get(kind, 0.0))
  s2 = np.zeros_like(var)
  lr = c.learning_rate
  for t, g in enumerate(grads, start=1):
    if kind == 'sgd':
      var -= lr * g
    elif kind == 'momentum':
      s1 = c.momentum * s1 + g
      var -= lr * s1
    elif kind == 'adagrad':
      s1 += g * g
      var -= lr * g / np.sqrt(s1)
    elif kind == 'adam':
      s1 = c.adam_beta1 * s1 + (1 - c.adam_beta1) * g
      s2 = c.adam_beta2 * s2 + (1 - c.adam_beta2) * g * g
      lr_t = lr * np.sqrt(1 - c.adam_beta2 ** t) / (1 - c.adam_beta1 ** t)
      var -= lr_t * s1 / (np.sqrt(s2) + c.epsilon)
    else:
      s1 = c.rmsprop_decay * s1 + (1 - c.rmsprop_decay) * g * g
      s2 = c.momentum * s2 + lr * g / np.sqrt(s1 + c.epsilon)
      var -= s2
  return var


@pytest.mark.parametrize('kind', opt_lib.OPTIMIZERS)
def test_update_rules(kind):
  config = opt_lib.OptimizerConfig(optimizer=kind, learning_rate=0.1)
  start = np.array([0.5, -1.0, 2.0], np.float32)
  var = tf.Variable(start)
  optimizer = opt_lib.Optimizer(config, [var])
  grads = [np.array([0.3, -0.2, 0.1], np.float32), np.array([-0.1, 0.4, 0.2], np.float32)]
  for g in grads:
    optimizer.apply([tf.constant(g)], tf.constant(0.1))
  np.testing.assert_allclose(var.numpy(), _reference(kind, config, start, grads), rtol=1e-5)


def test_learning_rate_decay():
  constant = opt_lib.OptimizerConfig(learning_rate=0.01, learning_rate_decay_factor=0.5)
  assert float(opt_lib.learning_rate(constant, 1000)) == pytest.approx(0.01)
  decayed = opt_lib.OptimizerConfig(learning_rate=0.01, learning_rate_decay_factor=0.5,
                                    decay_steps=10)
  assert float(opt_lib.learning_rate(decayed, 9)) == pytest.approx(0.01)
  assert float(opt_lib.learning_rate(decayed, 25)) == pytest.approx(0.0025)


def test_bad_config():
  with pytest.raises(ValueError, match='optimizer'):
    opt_lib.OptimizerConfig(optimizer='lamb')
