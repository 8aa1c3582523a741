"""The EM augmentations a training run asks for: settings, their checks, and applying them.

All are off by default, so that upstream's command trains as upstream's 2019
code did. Geometry (elastic warp, misalignment) acts on the raw image and moves
the labels and loss weights with it; intensity augmentations act on the
normalised image alone.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import tensorflow as tf

from ffn.training import section_geometry
from ffn.training import section_intensity
from ffn.utils import checks
from ffn.utils import errors

_RATIO = checks.Range(0, 1, low_open=True)


@dataclasses.dataclass(frozen=True)
class EMAugmentation:
  """Which EM augmentations run, and how strongly (train.py's flags of the same names)."""
  # Elastic warp (upstream HEAD elastic_warp): probability per example.
  elastic_warp_prob: float = 0.0
  elastic_warp_stdev_ratio: float = 0.03
  elastic_warp_control_points_ratio: float = 0.1
  # Misalignment (upstream HEAD misalignment: slip / translate): probability per example.
  misalignment_prob: float = 0.0
  misalignment_max_shift: int = 4
  misalignment_slip_ratio: float = 0.5
  # Missing sections (diluvian MissingDataAugmentGenerator): probability per section.
  missing_section_prob: float = 0.0
  # Out-of-focus sections (upstream HEAD out_of_focus_section): probability per section.
  out_of_focus_prob: float = 0.0
  out_of_focus_max_sigma: float = 2.0
  # Upstream HEAD contrast_factor_range / brightness_factor_range: (low, high) or None.
  contrast_range: tuple[float, float] | None = None
  brightness_range: tuple[float, float] | None = None
  # Diluvian GaussianNoiseAugmentGenerator along z: stdevs of N(1, mul), N(0, add).
  noise_multiplicative_stdev: float = 0.0
  noise_additive_stdev: float = 0.0

  def __post_init__(self):
    for name, valid in SETTING_RANGES.items():
      checks.check_number(getattr(self, name), name, valid)
    for name in ('contrast_range', 'brightness_range'):
      value = getattr(self, name)
      if value is None:
        continue
      values = tuple(value)
      valid = checks.NON_NEGATIVE if name == 'contrast_range' else checks.ANY
      checks.check_numbers(values, name, valid)
      if len(values) != 2 or values[0] > values[1]:
        raise errors.FFNError(f'{name} is {errors.shown(value)}; expected two numbers '
                              'low,high with low <= high')
      object.__setattr__(self, name, (float(values[0]), float(values[1])))
    for name, switch in DEPENDS_ON.items():
      if getattr(self, name) != _DEFAULTS[name] and not getattr(self, switch):
        raise errors.FFNError(f'{name} is {getattr(self, name)} but {switch} is 0: it would '
                              f'have no effect; set {switch} above 0 or leave {name} out')

  @property
  def geometry(self) -> bool:
    """Whether any augmentation moves voxels (and so the labels)."""
    return self.elastic_warp_prob > 0 or self.misalignment_prob > 0

  @property
  def intensity(self) -> bool:
    """Whether any augmentation changes image values only."""
    return bool(self.missing_section_prob > 0 or self.out_of_focus_prob > 0 or
                self.contrast_range or self.brightness_range or
                self.noise_multiplicative_stdev > 0 or self.noise_additive_stdev > 0)

  def check_patch(self, image_zyx: Sequence[int], label_zyx: Sequence[int]) -> None:
    """Refuses settings the patch sizes (zyx) cannot carry out."""
    if self.misalignment_prob > 0:
      if image_zyx[0] < 2:
        raise errors.FFNError(f'misalignment_prob is {self.misalignment_prob} but the training '
                              f'patch has {image_zyx[0]} section; misalignment needs >= 2')
      limit = min(list(image_zyx[1:]) + list(label_zyx[1:]))
      if self.misalignment_max_shift > limit:
        raise errors.FFNError(f'misalignment_max_shift is {self.misalignment_max_shift}; '
                              f'expected at most {limit}, the smallest y or x patch size')


SETTING_RANGES = {
    'elastic_warp_prob': checks.UNIT,
    'elastic_warp_stdev_ratio': checks.POSITIVE,
    'elastic_warp_control_points_ratio': _RATIO,
    'misalignment_prob': checks.UNIT,
    'misalignment_max_shift': checks.POSITIVE_INT,
    'misalignment_slip_ratio': checks.UNIT,
    'missing_section_prob': checks.UNIT,
    'out_of_focus_prob': checks.UNIT,
    'out_of_focus_max_sigma': checks.POSITIVE,
    'noise_multiplicative_stdev': checks.NON_NEGATIVE,
    'noise_additive_stdev': checks.NON_NEGATIVE,
}
# Settings that only act when another one (a probability) is above 0.
DEPENDS_ON = {
    'elastic_warp_stdev_ratio': 'elastic_warp_prob',
    'elastic_warp_control_points_ratio': 'elastic_warp_prob',
    'misalignment_max_shift': 'misalignment_prob',
    'misalignment_slip_ratio': 'misalignment_prob',
    'out_of_focus_max_sigma': 'out_of_focus_prob',
}
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(EMAugmentation)}


def _maybe(apply, prob: float, seed: tf.Tensor, *tensors):
  """`apply(*tensors)` with probability `prob`, else the tensors unchanged."""
  return tf.cond(tf.random.stateless_uniform([], seed) < prob, lambda: apply(*tensors),
                 lambda: tensors)


def augment_geometry(config: EMAugmentation, image: tf.Tensor, labels: tf.Tensor,
                     seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Elastic warp then misalignment of image and labels [z, y, x, c] alike, as configured."""
  seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
  if config.elastic_warp_prob > 0:
    image, labels = _maybe(
        lambda i, l: section_geometry.elastic_warp(
            i, l, config.elastic_warp_stdev_ratio, config.elastic_warp_control_points_ratio,
            seeds[1]), config.elastic_warp_prob, seeds[0], image, labels)
  if config.misalignment_prob > 0:
    image, labels = _maybe(
        lambda i, l: section_geometry.misalignment(
            i, l, config.misalignment_max_shift, config.misalignment_slip_ratio, seeds[3]),
        config.misalignment_prob, seeds[2], image, labels)
  return image, labels


def augment_intensity(config: EMAugmentation, image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """Missing and out-of-focus sections, contrast and brightness, then noise, as configured."""
  seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
  if config.missing_section_prob > 0:
    image = section_intensity.missing_sections(image, config.missing_section_prob, seeds[0])
  if config.out_of_focus_prob > 0:
    image = section_intensity.out_of_focus_sections(
        image, config.out_of_focus_prob, config.out_of_focus_max_sigma, seeds[1])
  if config.contrast_range or config.brightness_range:
    image = section_intensity.contrast_brightness(image, config.contrast_range,
                                                  config.brightness_range, seeds[2])
  if config.noise_multiplicative_stdev > 0 or config.noise_additive_stdev > 0:
    image = section_intensity.section_noise(image, config.noise_multiplicative_stdev,
                                            config.noise_additive_stdev, seeds[3])
  return image
