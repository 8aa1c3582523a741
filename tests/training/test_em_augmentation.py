"""EM augmentation settings: checked values, and the pipeline applying them to examples."""

import numpy as np
import pytest
import tensorflow as tf

from ffn.training import em_augmentation
from ffn.training import inputs
from ffn.utils import errors
import training_fixtures

EMAugmentation = em_augmentation.EMAugmentation


def test_defaults_are_off():
  config = EMAugmentation()
  assert not config.geometry and not config.intensity


@pytest.mark.parametrize('kwargs,message', [
    (dict(elastic_warp_prob=1.5),
     r'elastic_warp_prob is 1.5; expected a finite number in \[0, 1\]'),
    (dict(missing_section_prob=float('nan')), 'missing_section_prob is nan'),
    (dict(misalignment_prob=0.5, misalignment_max_shift=0), 'misalignment_max_shift is 0'),
    (dict(noise_additive_stdev=-1.0), 'noise_additive_stdev is -1.0'),
    (dict(contrast_range=(2.0, 1.0)), 'contrast_range is .*low <= high'),
    (dict(contrast_range=(-1.0, 1.0)), 'contrast_range is'),
    (dict(brightness_range=(0.0, float('inf'))), 'brightness_range is'),
    (dict(brightness_range=(0.1,)), 'brightness_range is .*two numbers'),
    (dict(misalignment_max_shift=3), 'misalignment_max_shift is 3 but misalignment_prob is 0'),
    (dict(out_of_focus_max_sigma=1.0), 'out_of_focus_max_sigma is 1.0 but out_of_focus_prob'),
])
def test_bad_settings_are_refused_naming_the_value(kwargs, message):
  with pytest.raises(errors.FFNError, match=message):
    EMAugmentation(**kwargs)


def test_patch_too_small_for_the_misalignment_is_refused():
  config = EMAugmentation(misalignment_prob=1.0, misalignment_max_shift=6)
  config.check_patch((5, 9, 9), (5, 9, 9))
  with pytest.raises(errors.FFNError, match='misalignment_max_shift is 6; expected at most 5'):
    config.check_patch((5, 9, 9), (5, 5, 9))
  with pytest.raises(errors.FFNError, match='needs >= 2'):
    config.check_patch((1, 9, 9), (1, 9, 9))


def test_augment_geometry_and_intensity_compose():
  image = tf.constant(np.random.default_rng(0).normal(size=(5, 9, 11, 1)).astype(np.float32))
  labels = tf.constant(np.full((5, 9, 11, 2), 0.95, np.float32))
  config = EMAugmentation(elastic_warp_prob=1.0, misalignment_prob=1.0,
                          missing_section_prob=1.0, contrast_range=(1.0, 1.0))
  seed = tf.constant([1, 2], tf.int32)
  out_image, out_labels = em_augmentation.augment_geometry(config, image, labels, seed)
  assert out_image.shape == image.shape and out_labels.shape == labels.shape
  np.testing.assert_array_equal(out_labels, labels)  # Constant labels stay constant.
  out = em_augmentation.augment_intensity(config, out_image, seed).numpy()
  for z in (0, 1, 3, 4):  # Every section but the centre one is missing.
    assert out[z].min() == out[z].max()
  np.testing.assert_allclose(out[2], out_image.numpy()[2], atol=1e-5)
  # The same seed gives the same augmentation (a pure function).
  again = em_augmentation.augment_intensity(
      config, em_augmentation.augment_geometry(config, image, labels, seed)[0], seed)
  np.testing.assert_array_equal(out, again)


def _pipeline(tmp_path, augmentations, size=(9, 9, 7)):
  _, labels = training_fixtures.blob_volume((24, 26, 28), num_objects=12, seed=3)
  image = ((labels * 37) % 200 + 20).astype(np.uint8)  # The image says which object.
  data, label = training_fixtures.write_volumes(tmp_path, image, labels)
  centers = training_fixtures.object_centers(labels, (5, 6, 6), np.random.default_rng(0), 20)
  training_fixtures.write_coordinates(tmp_path / 'c.tfr', centers)
  config = inputs.PipelineConfig(
      train_coords=str(tmp_path / 'c.tfr'), data_volumes=data, label_volumes=label,
      image_size=size, label_size=size, image_mean=0, image_stddev=1,
      permutable_axes=(), reflectable_axes=(), seed=1, augmentations=augmentations)
  return image, inputs.example_dataset(config)


def test_pipeline_misalignment_keeps_image_and_labels_aligned(tmp_path):
  image, dataset = _pipeline(tmp_path, EMAugmentation(misalignment_prob=1.0,
                                                      misalignment_max_shift=3))
  changed = 0
  for example in dataset.take(20):
    img, soft = example['image'].numpy(), example['labels'].numpy()
    assert set(np.unique(soft)) <= {np.float32(0.05), np.float32(0.95)}
    np.testing.assert_array_equal(example['weights'].numpy(), 1)
    np.testing.assert_array_equal(soft > 0.5, img == img[3, 4, 4, 0])
    raw = inputs.read_patch(image, example['center'].numpy(), (9, 9, 7))
    changed += not np.array_equal(raw, img)
  assert changed >= 10


def test_pipeline_elastic_warp_keeps_labels_discrete(tmp_path):
  _, dataset = _pipeline(tmp_path, EMAugmentation(elastic_warp_prob=1.0,
                                                  elastic_warp_stdev_ratio=0.1))
  for example in dataset.take(10):
    soft = example['labels'].numpy()
    assert set(np.unique(soft)) <= {np.float32(0.05), np.float32(0.95)}
    assert soft[3, 4, 4, 0] == np.float32(0.95)  # The centre still holds the object.


def test_pipeline_missing_sections_touch_the_image_only(tmp_path):
  image, dataset = _pipeline(tmp_path, EMAugmentation(missing_section_prob=1.0))
  for example in dataset.take(5):
    img, soft = example['image'].numpy(), example['labels'].numpy()
    raw = inputs.read_patch(image, example['center'].numpy(), (9, 9, 7)).astype(np.float32)
    for z in range(7):
      if z == 3:
        np.testing.assert_array_equal(img[z], raw[z])
      else:
        assert img[z].min() == img[z].max()
    np.testing.assert_array_equal(soft > 0.5, raw == raw[3, 4, 4, 0])


def test_pipeline_refuses_a_shift_larger_than_the_patch(tmp_path):
  with pytest.raises(errors.FFNError, match='misalignment_max_shift is 12'):
    _pipeline(tmp_path, EMAugmentation(misalignment_prob=1.0, misalignment_max_shift=12))
