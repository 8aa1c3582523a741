"""Optimizers with upstream's TF1 update rules, as checkpointable tf.Modules."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import tensorflow as tf

from ffn.utils import checks
from ffn.utils import errors

OPTIMIZERS = ('momentum', 'sgd', 'adagrad', 'adam', 'rmsprop')

# Allowed values of each numeric setting (train.py's flags of the same names).
SETTING_RANGES = {
    'learning_rate': checks.NON_NEGATIVE,  # 0 keeps the weights (e.g. to check a start).
    'momentum': checks.UNIT,
    'learning_rate_decay_factor': checks.Range(0, 1, low_open=True),
    'decay_steps': checks.POSITIVE_INT,
    'rmsprop_decay': checks.UNIT,
    'adam_beta1': checks.Range(0, 1, high_open=True),
    'adam_beta2': checks.Range(0, 1, high_open=True),
    'epsilon': checks.POSITIVE,
}


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """Optimizer choice and hyperparameters (upstream's flag names and defaults)."""
  optimizer: str = 'sgd'
  learning_rate: float = 0.001
  momentum: float = 0.9
  learning_rate_decay_factor: float | None = None
  decay_steps: int | None = None
  rmsprop_decay: float = 0.9
  adam_beta1: float = 0.9
  adam_beta2: float = 0.999
  epsilon: float = 1e-8

  def __post_init__(self):
    if self.optimizer not in OPTIMIZERS:
      raise errors.FFNError(f'optimizer {errors.shown(self.optimizer)} is not one of '
                            f'{OPTIMIZERS}')
    for name, valid in SETTING_RANGES.items():
      if getattr(self, name) is not None:
        checks.check_number(getattr(self, name), name, valid)


def learning_rate(config: OptimizerConfig, step: tf.Tensor) -> tf.Tensor:
  """The learning rate at `step`: staircase exponential decay when both decay flags are set."""
  lr = tf.constant(config.learning_rate, tf.float32)
  if config.learning_rate_decay_factor is None or config.decay_steps is None:
    return lr
  decays = tf.cast(tf.math.floordiv(tf.cast(step, tf.int64), config.decay_steps), tf.float32)
  return lr * tf.pow(tf.constant(config.learning_rate_decay_factor, tf.float32), decays)


class _Untracked:
  """Holds the model's variables without making them part of the optimizer's checkpoint."""

  def __init__(self, items):
    self.items = items


def _slot(var: tf.Variable, value: float, name: str) -> tf.Variable:
  """An optimizer state variable shaped like `var`."""
  return tf.Variable(tf.fill(var.shape, tf.constant(value, var.dtype)), trainable=False,
                     name=name, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


class Optimizer(tf.Module):
  """Applies gradients with the TF1 rule of `config.optimizer` to a fixed list of variables.

  State is created up front (not lazily) so that a checkpoint restores it directly.
  """

  def __init__(self, config: OptimizerConfig, variables: Sequence[tf.Variable]):
    super().__init__(name='optimizer')
    self.config = config
    self._variables = _Untracked(list(variables))
    kind = config.optimizer
    # TF1 initial values: Adagrad accumulators 0.1, RMSProp mean squares 1.
    initial = {'momentum': {'momentum': 0.0}, 'sgd': {}, 'adagrad': {'accumulator': 0.1},
               'adam': {'m': 0.0, 'v': 0.0}, 'rmsprop': {'rms': 1.0, 'momentum': 0.0}}[kind]
    self.slots = [{name: _slot(v, value, name) for name, value in initial.items()}
                  for v in self._variables.items]
    if kind == 'adam':
      agg = tf.VariableAggregation.ONLY_FIRST_REPLICA
      self.beta1_power = tf.Variable(config.adam_beta1, trainable=False, aggregation=agg)
      self.beta2_power = tf.Variable(config.adam_beta2, trainable=False, aggregation=agg)

  def state_names(self) -> list[str]:
    """Where this optimizer's state sits in a checkpoint: 'slots/<i>/<name>', 'beta1_power'..."""
    names = [f'slots/{i}/{name}' for i, slots in enumerate(self.slots) for name in slots]
    if self.config.optimizer == 'adam':
      names += ['beta1_power', 'beta2_power']
    return names

  def apply(self, grads: Sequence[tf.Tensor], lr: tf.Tensor) -> None:
    """Updates every variable from its gradient at learning rate `lr`."""
    c = self.config
    kind = c.optimizer
    if kind == 'adam':
      lr = lr * tf.sqrt(1.0 - self.beta2_power) / (1.0 - self.beta1_power)
    for var, grad, slots in zip(self._variables.items, grads, self.slots):
      if kind == 'sgd':
        var.assign_sub(lr * grad)
      elif kind == 'momentum':
        accum = slots['momentum'].assign(c.momentum * slots['momentum'] + grad)
        var.assign_sub(lr * accum)
      elif kind == 'adagrad':
        accum = slots['accumulator'].assign_add(tf.square(grad))
        var.assign_sub(lr * grad * tf.math.rsqrt(accum))
      elif kind == 'adam':
        m = slots['m'].assign(c.adam_beta1 * slots['m'] + (1.0 - c.adam_beta1) * grad)
        v = slots['v'].assign(c.adam_beta2 * slots['v'] + (1.0 - c.adam_beta2) * tf.square(grad))
        var.assign_sub(lr * m / (tf.sqrt(v) + c.epsilon))
      else:  # rmsprop
        rms = slots['rms'].assign(c.rmsprop_decay * slots['rms'] +
                                  (1.0 - c.rmsprop_decay) * tf.square(grad))
        mom = slots['momentum'].assign(
            c.momentum * slots['momentum'] + lr * grad * tf.math.rsqrt(rms + c.epsilon))
        var.assign_sub(mom)
    if kind == 'adam':
      self.beta1_power.assign(self.beta1_power * c.adam_beta1)
      self.beta2_power.assign(self.beta2_power * c.adam_beta2)
