"""MirroredStrategy training steps equal single-device ones (two logical CPUs)."""

import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import numpy as np

from conftest import REPO_ROOT
import training_fixtures

_SCRIPT = textwrap.dedent('''
  import numpy as np
  import tensorflow as tf
  cpu = tf.config.list_physical_devices('CPU')[0]
  tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  from ffn.training import import_util, optimizer as opt_lib, trainer

  ARGS = {'fov_size': [5, 7, 9], 'deltas': [1, 1, 1], 'depth': 2, 'features': 4}
  rng = np.random.default_rng(0)
  batch = [rng.normal(size=(4, 9, 7, 5, 1)).astype(np.float32) for _ in range(2)]
  labels = (rng.uniform(size=(4, 9, 7, 5, 1)) > 0.5).astype(np.float32) * 0.9 + 0.05
  weights = np.ones_like(labels)

  def run(strategy, initial=None):
    with strategy.scope():
      model = import_util.build_model('convstack_3d.ConvStack3DFFNModel', ARGS)
      opt = opt_lib.Optimizer(opt_lib.OptimizerConfig('momentum', 0.1),
                              list(model.named_variables().values()))
    if initial is not None:
      for v, value in zip(model.named_variables().values(), initial):
        v.assign(value)
    step = trainer.make_train_step(model, opt, strategy, 4)
    for _ in range(2):
      logits, loss, lr = step(batch[0], batch[1], labels, weights)
    return model, logits.numpy(), float(loss)

  mirrored = trainer.choose_strategy(['/cpu:0', '/cpu:1'])
  assert mirrored.num_replicas_in_sync == 2
  single = tf.distribute.get_strategy()
  m1, logits1, loss1 = run(single)
  start = [v.numpy() for v in m1.named_variables().values()]
  m1, logits1, loss1 = run(single, start)
  m2, logits2, loss2 = run(mirrored, start)
  assert logits2.shape == (4, 9, 7, 5, 1), logits2.shape
  np.testing.assert_allclose(logits1, logits2, atol=1e-5)
  assert abs(loss1 - loss2) < 1e-5, (loss1, loss2)
  for a, b in zip(m1.named_variables().values(), m2.named_variables().values()):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
  assert int(m2.global_step.numpy()) == 2
  print('OK')
''')


def test_mirrored_step_matches_single_device():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(REPO_ROOT))
  result = subprocess.run([sys.executable, '-c', _SCRIPT], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0 and 'OK' in result.stdout, result.stderr[-3000:]


_WORKER = textwrap.dedent('''
  import sys
  sys.path.insert(0, sys.argv[2])
  from absl import logging
  from ffn.training import trainer
  logging.set_verbosity(logging.INFO)
  directory = sys.argv[1]
  config = trainer.TrainConfig(
      train_coords=f'{directory}/coords.tfr', data_volumes=f'blobs:{directory}/image.h5:raw',
      label_volumes=f'blobs:{directory}/labels.h5:stack',
      model_name='convstack_3d.ConvStack3DFFNModel',
      model_args={'fov_size': [5, 5, 5], 'deltas': [1, 1, 1], 'depth': 1, 'features': 4},
      train_dir=f'{directory}/train', batch_size=2, max_steps=3, image_mean=128,
      image_stddev=33)
  assert trainer.train(config) == 3
  print('OK')
''')


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(('localhost', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def test_multi_worker_training_on_localhost(tmp_path):
  image, labels = training_fixtures.blob_volume((16, 18, 20), num_objects=6)
  training_fixtures.write_volumes(tmp_path, image, labels)
  training_fixtures.write_coordinates(
      tmp_path / 'coords.tfr',
      training_fixtures.object_centers(labels, (4, 4, 4), np.random.default_rng(0), 10))
  workers = [f'localhost:{p}' for p in _free_ports(2)]
  procs = []
  for index in range(2):
    tf_config = {'cluster': {'worker': workers}, 'task': {'type': 'worker', 'index': index}}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(REPO_ROOT),
               TF_CONFIG=json.dumps(tf_config))
    procs.append(subprocess.Popen(
        [sys.executable, '-c', _WORKER, str(tmp_path), str(pathlib.Path(__file__).parent)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  outputs = [p.communicate(timeout=300) for p in procs]
  for proc, (out, err) in zip(procs, outputs):
    assert proc.returncode == 0 and 'OK' in out, err[-3000:]
  assert (tmp_path / 'train' / 'model.ckpt-3.index').exists()
  assert '2 replica(s)' in outputs[0][1]  # One per worker, synchronised.
  assert len(list((tmp_path / 'train').glob('events.out.tfevents.*'))) == 1  # Chief only.
