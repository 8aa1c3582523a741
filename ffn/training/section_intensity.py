"""EM-section augmentations of image intensities alone: missing/blurred sections, contrast, noise.

The image is a float32 [z, y, x, c] patch, normalised; z is the sectioning
axis. Each function is pure given its tensors and a stateless `seed` ([2] int).
"""

from __future__ import annotations

import math

import tensorflow as tf


def _seeds(seed: tf.Tensor, n: int) -> list[tf.Tensor]:
  """`n` independent stateless seeds drawn from `seed`."""
  return tf.unstack(tf.random.experimental.stateless_split(seed, n))


def _chosen_sections(depth: int, prob: float, seed: tf.Tensor) -> tf.Tensor:
  """A [depth] bool mask: each section independently with probability `prob`."""
  return tf.random.stateless_uniform([depth], seed) < prob


def missing_sections(image: tf.Tensor, prob: float, seed: tf.Tensor) -> tf.Tensor:
  """Each section but the centre one is, with probability `prob`, replaced by one constant.

  The constant is drawn once per patch between the patch's minimum and maximum
  (upstream HEAD fills a random value of the intensity range; diluvian
  spares the seed's section, as here).
  """
  depth = image.shape[0]
  choose_seed, fill_seed = _seeds(seed, 2)
  chosen = tf.logical_and(_chosen_sections(depth, prob, choose_seed),
                          tf.not_equal(tf.range(depth), depth // 2))
  low, high = tf.reduce_min(image), tf.reduce_max(image)
  fill = low + (high - low) * tf.random.stateless_uniform([], fill_seed)
  return tf.where(chosen[:, None, None, None], tf.fill(tf.shape(image), fill), image)


def gaussian_kernel(sigma: tf.Tensor, radius: int) -> tf.Tensor:
  """A normalised 1-D Gaussian of `sigma` over 2 * radius + 1 taps (sigma 0: the identity)."""
  taps = tf.range(-radius, radius + 1, dtype=tf.float32)
  safe = tf.maximum(sigma, 1e-6)
  kernel = tf.where(sigma > 1e-3, tf.exp(-0.5 * tf.square(taps / safe)),
                    tf.cast(tf.equal(taps, 0), tf.float32))
  return kernel / tf.reduce_sum(kernel)


def blur_sections(image: tf.Tensor, sigma: tf.Tensor, radius: int) -> tf.Tensor:
  """Every section of image [z, y, x, 1] blurred in yx by a Gaussian of `sigma` pixels.

  The kernel reaches `radius` pixels; the patch is mirrored at its edges.
  """
  kernel = gaussian_kernel(sigma, radius)
  padded = tf.pad(image, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode='SYMMETRIC')
  out = tf.nn.conv2d(padded, tf.reshape(kernel, [-1, 1, 1, 1]), 1, 'VALID')
  return tf.nn.conv2d(out, tf.reshape(kernel, [1, -1, 1, 1]), 1, 'VALID')


def blur_radius(max_sigma: float, shape_yx) -> int:
  """Kernel reach for `max_sigma`: 3 sigma, no more than the patch allows mirroring."""
  return max(0, min(int(math.ceil(3 * max_sigma)), *shape_yx))


def out_of_focus_sections(image: tf.Tensor, prob: float, max_sigma: float,
                          seed: tf.Tensor) -> tf.Tensor:
  """Each section is, with probability `prob`, blurred in yx (one sigma in [0, max_sigma)).

  As upstream HEAD's out_of_focus_section (max_filter_stdev), whole sections only.
  """
  depth = image.shape[0]
  choose_seed, sigma_seed = _seeds(seed, 2)
  chosen = _chosen_sections(depth, prob, choose_seed)
  sigma = tf.random.stateless_uniform([], sigma_seed, 0, max_sigma)
  blurred = blur_sections(image, sigma, blur_radius(max_sigma, image.shape[1:3]))
  return tf.where(chosen[:, None, None, None], blurred, image)


def contrast_brightness(image: tf.Tensor, contrast_range: tuple[float, float] | None,
                        brightness_range: tuple[float, float] | None,
                        seed: tf.Tensor) -> tf.Tensor:
  """Upstream HEAD's random_contrast_brightness_adjustment: one draw of each factor per patch.

  Contrast scales each section's deviation from its mean by a factor drawn
  from `contrast_range`; brightness adds an offset drawn from `brightness_range`
  (in normalised units). None leaves that one out.
  """
  contrast_seed, brightness_seed = _seeds(seed, 2)
  if contrast_range is not None:
    factor = tf.random.stateless_uniform([], contrast_seed, *contrast_range)
    image = tf.image.adjust_contrast(image, factor)
  if brightness_range is not None:
    delta = tf.random.stateless_uniform([], brightness_seed, *brightness_range)
    image = tf.image.adjust_brightness(image, delta)
  return image


def section_noise(image: tf.Tensor, multiplicative_stdev: float, additive_stdev: float,
                  seed: tf.Tensor) -> tf.Tensor:
  """Diluvian's Gaussian noise along z: each section times N(1, mul) plus N(0, add)."""
  depth = image.shape[0]
  mul_seed, add_seed = _seeds(seed, 2)
  mul = tf.random.stateless_normal([depth, 1, 1, 1], mul_seed, 1.0, multiplicative_stdev)
  add = tf.random.stateless_normal([depth, 1, 1, 1], add_seed, 0.0, additive_stdev)
  return image * mul + add
