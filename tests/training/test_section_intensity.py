"""Missing and out-of-focus sections, contrast/brightness and noise, on small image tensors."""

import numpy as np
import pytest
import tensorflow as tf

from ffn.training import section_intensity


def _seed(i):
  return tf.constant([i, 11], tf.int32)


def _image(shape_zyx=(7, 9, 12), seed=0):
  return np.random.default_rng(seed).normal(size=tuple(shape_zyx) + (1,)).astype(np.float32)


def test_missing_section_is_constant_and_spares_the_centre():
  image = _image()
  missing_seen = 0
  for i in range(20):
    out = section_intensity.missing_sections(tf.constant(image), 0.4, _seed(i)).numpy()
    changed = [not np.array_equal(out[z], image[z]) for z in range(7)]
    assert not changed[3]
    fills = {float(out[z].min()) for z in range(7) if changed[z]}
    for z in range(7):
      if changed[z]:
        assert out[z].min() == out[z].max()  # The whole section is one value.
        assert image.min() <= out[z].min() <= image.max()
      else:
        np.testing.assert_array_equal(out[z], image[z])
    assert len(fills) <= 1  # One fill value per patch.
    missing_seen += sum(changed)
  assert 20 <= missing_seen <= 80  # About 0.4 of 6 sections, 20 times.
  np.testing.assert_array_equal(
      section_intensity.missing_sections(tf.constant(image), 0.0, _seed(0)), image)


def test_gaussian_kernel_is_normalised_and_zero_sigma_is_identity():
  kernel = section_intensity.gaussian_kernel(tf.constant(1.5), 4).numpy()
  assert kernel.sum() == pytest.approx(1.0) and kernel.argmax() == 4
  np.testing.assert_allclose(kernel, kernel[::-1])
  image = _image()
  np.testing.assert_allclose(
      section_intensity.blur_sections(tf.constant(image), tf.constant(0.0), 3), image,
      atol=1e-6)


def test_out_of_focus_sections_are_blurred_in_yx_only():
  image = _image((5, 16, 18))
  blurred_seen = 0
  for i in range(10):
    out = section_intensity.out_of_focus_sections(tf.constant(image), 0.5, 3.0,
                                                  _seed(i)).numpy()
    for z in range(5):
      if np.array_equal(out[z], image[z]):
        continue
      blurred_seen += 1
      # Blur keeps a section's mean and smooths it; other sections are untouched.
      assert out[z].mean() == pytest.approx(image[z].mean(), abs=0.05)
      assert out[z].std() < image[z].std()
  assert blurred_seen >= 10


def test_blur_matches_a_separable_gaussian():
  image = np.zeros((2, 11, 13, 1), np.float32)
  image[1, 5, 6, 0] = 1.0
  out = section_intensity.blur_sections(tf.constant(image), tf.constant(1.0), 4).numpy()
  taps = np.exp(-0.5 * np.arange(-4, 5) ** 2)
  taps /= taps.sum()
  np.testing.assert_allclose(out[1, 1:10, 2:11, 0], np.outer(taps, taps), atol=1e-6)
  assert np.all(out[0] == 0)


def test_contrast_scales_each_section_about_its_mean_and_brightness_adds():
  image = _image((4, 6, 8))
  out = section_intensity.contrast_brightness(tf.constant(image), (2.0, 2.0), (0.5, 0.5),
                                              _seed(0)).numpy()
  mean = image.mean(axis=(1, 2), keepdims=True)
  np.testing.assert_allclose(out, (image - mean) * 2 + mean + 0.5, atol=1e-5)
  factors = set()
  for i in range(10):
    out = section_intensity.contrast_brightness(tf.constant(image), (0.5, 1.5), None,
                                                _seed(i)).numpy()
    factor = (out - mean) / (image - mean)
    assert np.allclose(factor, factor.flat[0], atol=1e-3)  # One factor per patch.
    assert 0.5 <= factor.flat[0] <= 1.5
    factors.add(round(float(factor.flat[0]), 3))
  assert len(factors) > 5


def test_section_noise_differs_by_section_and_is_uniform_within_one():
  image = _image((6, 5, 7))
  out = section_intensity.section_noise(tf.constant(image), 0.0, 0.3, _seed(2)).numpy()
  offsets = (out - image).reshape(6, -1)
  np.testing.assert_allclose(offsets, offsets[:, :1].repeat(offsets.shape[1], 1), atol=1e-6)
  assert len(set(np.round(offsets[:, 0], 5))) == 6
  out = section_intensity.section_noise(tf.constant(image), 0.2, 0.0, _seed(3)).numpy()
  ratios = (out / image).reshape(6, -1)
  np.testing.assert_allclose(ratios, ratios[:, :1].repeat(ratios.shape[1], 1), rtol=1e-4)
  assert np.std(ratios[:, 0]) > 0.01
