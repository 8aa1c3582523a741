"""Training with HEAD's FOV policies and the EM augmentations switched on runs and saves."""

import numpy as np
import pytest

from ffn.training import checkpoint
from ffn.training import em_augmentation
from ffn.training import trainer
import training_fixtures

MODEL = 'convstack_3d.ConvStack3DFFNModel'
TINY = {'fov_size': [7, 7, 5], 'deltas': [1, 1, 1], 'depth': 1, 'features': 4}
ALL_ON = em_augmentation.EMAugmentation(
    elastic_warp_prob=0.5, misalignment_prob=0.5, misalignment_max_shift=2,
    missing_section_prob=0.2, out_of_focus_prob=0.2, contrast_range=(0.8, 1.2),
    brightness_range=(-0.1, 0.1), noise_multiplicative_stdev=0.05, noise_additive_stdev=0.05)


@pytest.mark.parametrize('policy', ['fixed_window', 'no_step', 'max_pred_offsets'])
def test_training_with_policy_and_all_augmentations(tmp_path, policy):
  image, labels = training_fixtures.blob_volume(seed=0)
  data, label = training_fixtures.write_volumes(tmp_path, image, labels)
  coords = tmp_path / 'coords.tfr'
  training_fixtures.write_coordinates(coords, training_fixtures.object_centers(
      labels, (10, 10, 10), np.random.default_rng(0), 20))
  config = trainer.TrainConfig(
      train_coords=str(coords), data_volumes=data, label_volumes=label, model_name=MODEL,
      model_args=TINY, train_dir=str(tmp_path / 'train'), batch_size=2, max_steps=4,
      image_mean=128, image_stddev=33, random_seed=5, fov_policy=policy, threshold=0.5,
      augmentations=ALL_ON)
  assert trainer.train(config) == 4
  assert checkpoint.resolve_checkpoint_path(config.train_dir).endswith('model.ckpt-4')
