"""train.py --init_checkpoint: a fresh run starts from pretrained weights; mismatches stop it."""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import FIB25_CHECKPOINT, REPO_ROOT
from ffn.training import checkpoint
from ffn.training import import_util
import training_fixtures

MODEL = 'convstack_3d.ConvStack3DFFNModel'
FIB25_ARGS = '{"depth": 12, "fov_size": [33, 33, 33], "deltas": [8, 8, 8]}'


def _train(tmp_path, train_dir, *extra):
  image, labels = training_fixtures.blob_volume(shape_zyx=(58, 58, 58), num_objects=12)
  data, label = training_fixtures.write_volumes(tmp_path, image, labels)
  coords = tmp_path / 'coords.tfr'
  training_fixtures.write_coordinates(coords, training_fixtures.object_centers(
      labels, (25, 25, 25), np.random.default_rng(0), 8))
  args = ['train.py', '--train_coords', str(coords), '--data_volumes', data,
          '--label_volumes', label, '--model_name', MODEL, '--image_mean', '128',
          '--image_stddev', '33', '--batch_size', '1', '--train_dir', str(train_dir)]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run([sys.executable] + args + list(extra), cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=600)


def test_learning_rate_0_keeps_the_fib25_weights_and_resuming_wins(tmp_path):
  train_dir = tmp_path / 'train'
  result = _train(tmp_path, train_dir, '--model_args', FIB25_ARGS, '--max_steps', '2',
                  '--learning_rate', '0', '--init_checkpoint', str(FIB25_CHECKPOINT))
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Initialised the network weights from' in result.stderr
  saved = checkpoint.latest_checkpoint(str(train_dir))
  assert saved.endswith('model.ckpt-2')  # Counted from 0, not from fib25's 27,465,036.

  model = import_util.build_model(MODEL, FIB25_ARGS)
  fib25, fib25_step = checkpoint.read_model_values(model, str(FIB25_CHECKPOINT))
  ours, our_step = checkpoint.read_model_values(model, saved)
  assert fib25_step == 27465036 and our_step == 2
  assert sorted(ours) == sorted(fib25)
  for name, value in fib25.items():
    np.testing.assert_array_equal(ours[name], value, err_msg=name)

  # A checkpoint in --train_dir is resumed; the init checkpoint is then ignored, and says so.
  result = _train(tmp_path, train_dir, '--model_args', FIB25_ARGS, '--max_steps', '3',
                  '--learning_rate', '0', '--init_checkpoint', str(FIB25_CHECKPOINT))
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Resuming from' in result.stderr and 'is ignored' in result.stderr
  assert 'Initialised the network weights' not in result.stderr
  assert checkpoint.latest_checkpoint(str(train_dir)).endswith('model.ckpt-3')


@pytest.mark.parametrize('model_args,variable,shapes', [
    ('{"depth": 12, "fov_size": [33, 33, 33], "deltas": [8, 8, 8], "features": 16}',
     'seed_update/conv0_a/weights', '[3, 3, 3, 2, 32] in checkpoint'),
    ('{"depth": 13, "fov_size": [33, 33, 33], "deltas": [8, 8, 8]}',
     'seed_update/conv12_a/weights', None),
])
def test_a_mismatching_model_stops_with_one_line(tmp_path, model_args, variable, shapes):
  train_dir = tmp_path / 'train'
  result = _train(tmp_path, train_dir, '--model_args', model_args, '--max_steps', '1',
                  '--init_checkpoint', str(FIB25_CHECKPOINT))
  assert result.returncode == 1
  assert 'Traceback' not in result.stderr
  lines = [l for l in result.stderr.splitlines() if variable in l]
  assert lines, result.stderr[-2000:]
  if shapes:
    assert shapes in lines[-1] and 'model expects [3, 3, 3, 2, 16]' in lines[-1]
  assert checkpoint.latest_checkpoint(str(train_dir)) is None
