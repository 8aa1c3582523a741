#!/usr/bin/env python
"""ms per FOV of ConvStack3DFFNModel.predict_logits beside a bare tf.nn.conv3d stack.

Both run the README model's shape (depth 12, 33^3, 32 features) with the same weights,
timed interleaved in one process so that machine load affects both alike.

  python bench/forward.py [--repeats 10]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # pylint: disable=g-import-not-at-top
import time

import numpy as np
import tensorflow as tf

from ffn.training import import_util
import readme_model  # bench/, the script's own directory



def bare_stack(kernels, biases, depth, batch):
  """A tf.function of the same convolutions on plain tensors, fixed batch shape."""
  conv = lambda x, i: tf.nn.bias_add(tf.nn.conv3d(x, kernels[i], [1] * 5, 'SAME'), biases[i])

  @tf.function(input_signature=[tf.TensorSpec([batch, 33, 33, 33, 1], tf.float32)] * 2)
  def run(image, seed):
    net = tf.concat([image, seed], -1)
    net = conv(tf.nn.relu(conv(net, 0)), 1)
    for i in range(1, depth):
      residual = net
      net = conv(tf.nn.relu(conv(tf.maximum(net, 0.0), 2 * i)), 2 * i + 1) + residual
    return seed + conv(tf.maximum(net, 0.0), 2 * depth)

  return run


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--repeats', type=int, default=10)
  args = parser.parse_args()
  model = import_util.build_model(readme_model.MODEL_NAME, readme_model.MODEL_ARGS)
  variables = list(model.named_variables().values())
  kernels = [tf.constant(v) for v in variables[0::2]]
  biases = [tf.constant(v) for v in variables[1::2]]
  rng = np.random.default_rng(0)
  print(f'TensorFlow {tf.__version__}, oneDNN {os.environ["TF_ENABLE_ONEDNN_OPTS"]}, '
        f'{os.cpu_count()} CPUs; median of {args.repeats} interleaved calls')
  for batch in (1, 4):
    image = rng.normal(size=(batch, 33, 33, 33, 1)).astype(np.float32)
    seed = rng.normal(size=(batch, 33, 33, 33, 1)).astype(np.float32)
    bare = bare_stack(kernels, biases, model.depth, batch)
    ours_out, bare_out = model.predict_logits(image, seed), bare(image, seed)  # Trace.
    assert np.allclose(ours_out.numpy(), bare_out.numpy(), atol=1e-4)
    times = {'ours': [], 'bare': []}
    for _ in range(args.repeats):
      for name, fn in (('ours', model.predict_logits), ('bare', bare)):
        start = time.perf_counter()
        fn(image, seed).numpy()
        times[name].append(time.perf_counter() - start)
    ours = np.median(times['ours']) * 1000 / batch
    plain = np.median(times['bare']) * 1000 / batch
    print(f'batch {batch}: ours {ours:.1f} ms/FOV, bare tf.nn.conv3d stack {plain:.1f} ms/FOV, '
          f'ratio ours/bare {ours / plain:.3f}')


if __name__ == '__main__':
  main()
