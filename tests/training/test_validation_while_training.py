"""train.py --validation_interval: checkpoints scored by segmentation, as TensorBoard scalars."""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from conftest import REPO_ROOT
import training_fixtures

MODEL = 'convstack_3d.ConvStack3DFFNModel'
TINY = {'fov_size': [7, 7, 5], 'deltas': [1, 1, 1], 'depth': 1, 'features': 4}
BOX = 'start { x:4 y:4 z:4 } size { x:24 y:24 z:20 }'
TAGS = ('validation/vi_split', 'validation/vi_merge', 'validation/vi_total',
        'validation/adapted_rand_error')


@pytest.fixture(name='data', scope='module')
def _data(tmp_path_factory):
  """(training flags, validation request text, groundtruth spec) of the Voronoi blobs."""
  root = tmp_path_factory.mktemp('data')
  image, labels = training_fixtures.blob_volume(shape_zyx=(32, 36, 36), num_objects=20)
  data, label = training_fixtures.write_volumes(root, image, labels)
  coords = root / 'coords.tfr'
  training_fixtures.write_coordinates(coords, training_fixtures.object_centers(
      labels, (6, 6, 6), np.random.default_rng(0), 8))
  args = ['--train_coords', str(coords), '--data_volumes', data, '--label_volumes', label,
          '--model_name', MODEL, '--model_args', json.dumps(TINY), '--image_mean', '128',
          '--image_stddev', '33', '--batch_size', '1', '--save_checkpoint_secs', '0',
          '--summary_rate_secs', '1000']
  # model_name, model_args, image_mean and image_stddev come from the training flags.
  request = (f'image {{ hdf5: "{root / "image.h5"}:raw" }} '
             'seed_policy: "PolicyGrid3d" seed_policy_args: "{\\"step\\": 6}" '
             'inference_options { init_activation: 0.95 pad_value: 0.05 move_threshold: 0.9 '
             'segment_threshold: 0.6 min_segment_size: 10 }')
  return args, request, f'{root / "labels.h5"}:stack'


def _train(train_dir, data, *extra):
  args, request, gt = data
  validation = ['--validation_request', request, '--validation_bounding_box', BOX,
                '--validation_groundtruth', gt]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(REPO_ROOT))
  return subprocess.run([sys.executable, '-m', 'ffn.scripts.train', *args, '--train_dir',
                         str(train_dir), *validation, *extra], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=600)


def _events(directory):
  """(step, tag, value as an array) of each summary value in the event files of `directory`."""
  for path in sorted(glob.glob(os.path.join(directory, 'events.*'))):
    for record in tf.data.TFRecordDataset(path):
      event = event_pb2.Event.FromString(record.numpy())
      for value in event.summary.value:
        yield event.step, value.tag, tf.make_ndarray(value.tensor)


def _scalars(directory) -> dict[str, dict[int, float]]:
  """{tag: {step: value}} of the scalar summaries in the event files of `directory`."""
  found: dict[str, dict[int, float]] = {}
  for step, tag, value in _events(directory):
    if value.ndim == 0:
      found.setdefault(tag, {})[step] = float(value)
  return found


def _scores(train_dir) -> dict[int, dict]:
  with open(os.path.join(train_dir, 'validation', 'scores.json')) as f:
    return {row['step']: row for row in json.load(f)['checkpoints']}


def _check_scalars_are_the_scores(train_dir, steps):
  scalars = _scalars(os.path.join(train_dir, 'validation'))
  scores = _scores(train_dir)
  assert sorted(scores) == sorted(steps)
  for tag in TAGS:
    assert scalars[tag] == pytest.approx(
        {s: scores[s][tag.split('/')[1]] for s in steps}, rel=1e-6), tag
  with_erl = {s: scores[s]['erl_nm'] for s in steps if scores[s]['erl_nm'] is not None}
  assert scalars.get('validation/erl_nm', {}) == pytest.approx(with_erl, rel=1e-6)
  # Training's own scalars stay in the train_dir's event files, without validation ones.
  training_tags = {tag for _, tag, _ in _events(train_dir)}
  assert 'loss' in training_tags
  assert not [t for t in training_tags if t.startswith('validation/')]


def test_inline_validation_at_each_multiple_and_after_a_resume(tmp_path, data):
  train_dir = tmp_path / 'train'
  proc = _train(train_dir, data, '--max_steps', '6', '--validation_interval', '3',
                '--validation_inline')
  assert proc.returncode == 0, proc.stderr[-3000:]
  _check_scalars_are_the_scores(train_dir, [3, 6])
  assert 'validation of step 3: vi_split' in proc.stderr

  # Resumed at step 6: 6 is not due again, 9 is; 7 and 8 are not.
  proc = _train(train_dir, data, '--max_steps', '9', '--validation_interval', '3',
                '--validation_inline')
  assert proc.returncode == 0, proc.stderr[-3000:]
  _check_scalars_are_the_scores(train_dir, [3, 6, 9])


def test_background_validation_one_at_a_time_newest_waits(tmp_path, data):
  train_dir = tmp_path / 'train'
  proc = _train(train_dir, data, '--max_steps', '6', '--validation_interval', '2')
  assert proc.returncode == 0, proc.stderr[-3000:]
  started = [int(s) for s in re.findall(r'validating checkpoint \S+ of step (\d+) in process',
                                        proc.stderr)]
  skipped = [int(s) for s in re.findall(r'validation of step (\d+) skipped', proc.stderr)]
  # Step 4 waits while step 2 is validated, and is skipped when step 6 takes its place
  # before step 2 is done; the newest waiting one (6) runs before training returns.
  assert sorted(started + skipped) == [2, 4, 6]
  assert started[0] == 2 and started[-1] == 6
  assert proc.stderr.count('done; scores in') == len(started)
  _check_scalars_are_the_scores(train_dir, started)
  for step in started:
    assert os.path.exists(train_dir / 'validation' / f'step-{step}.log')


@pytest.mark.parametrize('extra,message', [
    (('--validation_inline',), '--validation_request applies to validation while training'),
    (('--validation_interval', '2', '--validation_bounding_box',
      'start { x:20 y:0 z:0 } size { x:24 y:24 z:24 }'), 'outside groundtruth'),
    (('--validation_interval', '2', '--validation_bounding_box',
      'start { x:0 y:0 z:0 } size { x:4 y:24 z:24 }'), "smaller than the model's field of view"),
    (('--validation_interval', '2', '--validation_request', 'image { hdf5: "x.h5:raw" } bogus: 1'),
     '--validation_request is not a valid InferenceRequest'),
])
def test_bad_validation_flags_stop_before_training(tmp_path, data, extra, message):
  train_dir = tmp_path / 'train'
  proc = _train(train_dir, data, '--max_steps', '2', *extra)
  assert proc.returncode == 1
  assert message in proc.stderr, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr
  assert not glob.glob(str(train_dir / '*.index'))


def test_the_request_gets_the_training_model_or_must_name_it():
  from ffn.analysis import checkpoint_selection  # pylint: disable=g-import-not-at-top
  from ffn.analysis import validation  # pylint: disable=g-import-not-at-top
  from ffn.inference.request import run_request  # pylint: disable=g-import-not-at-top
  args = json.dumps(TINY)
  filled = validation.training_request(run_request.parse_request('image_mean: 100'), MODEL,
                                       args, 128.0, 33.0)
  assert (filled.model_name, json.loads(filled.model_args)) == (MODEL, TINY)
  assert (filled.image_mean, filled.image_stddev) == (100.0, 33.0)  # The request's mean wins.
  same = run_request.parse_request(
      f'model_name: "{MODEL}" model_args: {json.dumps(json.dumps(TINY, indent=1))}')
  assert validation.training_request(same, MODEL, args).model_args == same.model_args
  other = run_request.parse_request(
      f'model_name: "{MODEL}" model_args: {json.dumps(json.dumps(dict(TINY, depth=2)))}')
  with pytest.raises(checkpoint_selection.SelectionError, match='model_args'):
    validation.training_request(other, MODEL, args)
  with pytest.raises(checkpoint_selection.SelectionError, match='model_name'):
    validation.training_request(run_request.parse_request('model_name: "x.Y"'), MODEL, args)
