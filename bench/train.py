#!/usr/bin/env python
"""Training speed of the README model (depth 12, 33^3, batch 4) on the bundled sample.

Prints steps/s and FOVs/s of the compiled training step alone (fixed inputs) and of the
full loop (tf.data patches, FOV movement, prediction feedback, optimiser step), for each
--precisions (default float32 and bfloat16, in one run) and each --xla setting (the step
compiled with XLA, `jit_compile=True`, or not), the ratio to the first, and the loss after
the timed steps of the step alone (same initial weights and inputs in every setting) with
its difference from the same precision without XLA.

  python bench/train.py [--steps 10] [--precisions float32,bfloat16] [--xla off,on]
      [--train_coords third_party/.../tf_record_file]

Without --train_coords (or if it does not exist) it writes 2000 random coordinates on
labelled voxels, 24 voxels from the border, to a temporary file.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import argparse  # pylint: disable=g-import-not-at-top
import tempfile
import time

import h5py
import numpy as np
import tensorflow as tf

from ffn.training import examples
from ffn.training import import_util
from ffn.training import inputs
from ffn.training import optimizer as optimizer_lib
from ffn.training import precision as precision_lib
from ffn.training import trainer
from ffn.utils import hardware
import readme_model  # bench/, the script's own directory

SAMPLE = os.path.join(REPO, 'third_party', 'neuroproof_examples', 'training_sample2')


def write_random_coordinates(path: str, count: int = 2000, margin: int = 24) -> None:
  """Random labelled voxels of the sample as a GZIP TFRecord of coordinates."""
  labels = h5py.File(os.path.join(SAMPLE, 'groundtruth.h5'), 'r')['stack'][...]
  inner = labels[margin:-margin, margin:-margin, margin:-margin]
  zyx = np.argwhere(inner > 0) + margin
  picks = zyx[np.random.default_rng(0).choice(len(zyx), count, replace=False)]
  with tf.io.TFRecordWriter(path, options='GZIP') as writer:
    for z, y, x in picks:
      writer.write(tf.train.Example(features=tf.train.Features(feature={
          'center': tf.train.Feature(int64_list=tf.train.Int64List(value=[x, y, z])),
          'label_volume_name': tf.train.Feature(
              bytes_list=tf.train.BytesList(value=[b'validation1'])),
      })).SerializeToString())


def _rates(precision: str, xla: bool, args, coords: str) -> tuple[float, float, float]:
  """(steps/s of the training step alone, steps/s of the full loop, loss of the last step)."""
  b = args.batch_size
  tf.random.set_seed(0)  # The same initial weights in every setting.
  model = import_util.build_model(readme_model.MODEL_NAME, readme_model.MODEL_ARGS,
                                  batch_size=b)
  optimizer = optimizer_lib.Optimizer(optimizer_lib.OptimizerConfig(),
                                      list(model.named_variables().values()))
  dtype = precision_lib.training_dtype(precision)
  step_fn = trainer.make_train_step(model, optimizer, tf.distribute.get_strategy(), b, dtype,
                                    jit_compile=xla)

  x = np.random.default_rng(0).normal(size=(b, 33, 33, 33, 1)).astype(np.float32)
  step_fn(x, x, np.full_like(x, 0.5), np.ones_like(x))  # Trace.
  start = time.perf_counter()
  for _ in range(args.steps):
    loss = float(step_fn(x, x, np.full_like(x, 0.5), np.ones_like(x))[1])
  alone = args.steps / (time.perf_counter() - start)

  sizes = examples.training_sizes(model.info, 'fixed', 1)
  dataset = inputs.example_dataset(inputs.PipelineConfig(
      train_coords=coords, data_volumes=f'validation1:{SAMPLE}/grayscale_maps.h5:raw',
      label_volumes=f'validation1:{SAMPLE}/groundtruth.h5:stack', image_size=sizes.image,
      label_size=sizes.label, image_mean=128, image_stddev=33))
  iterator = iter(dataset)
  feeder = examples.BatchFeeder(lambda: {k: v.numpy() for k, v in next(iterator).items()},
                                model.info, b, shifts=model.shifts)

  def one_step():
    seed, image, labels, weights = feeder.next_batch()
    logits, _, _ = step_fn(image, seed, labels, weights)
    feeder.update(logits.numpy())

  one_step()
  start = time.perf_counter()
  for _ in range(args.steps):
    one_step()
  loop = args.steps / (time.perf_counter() - start)
  return alone, loop, loss


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--batch_size', type=int, default=4)
  parser.add_argument('--precisions', default='float32,bfloat16',
                      help='comma-separated precisions; ratios are to the first')
  parser.add_argument('--xla', default='off,on',
                      help='comma-separated: off (today\'s step), on (jit_compile=True)')
  parser.add_argument('--train_coords', default=os.path.join(SAMPLE, 'tf_record_file'))
  args = parser.parse_args()
  coords = args.train_coords
  if not os.path.exists(coords):
    coords = os.path.join(tempfile.mkdtemp(), 'coords.tfr')
    write_random_coordinates(coords)

  b = args.batch_size
  print(f'TensorFlow {tf.__version__}, oneDNN {os.environ["TF_ENABLE_ONEDNN_OPTS"]}, '
        f'{os.cpu_count()} CPUs, CPU offers {hardware.cpu_features().describe()}; '
        f'README model, batch {b}, {args.steps} timed steps')
  results = {(p, x): _rates(p, x == 'on', args, coords)
             for p in args.precisions.split(',') for x in args.xla.split(',')}
  first_alone, first_loop, _ = next(iter(results.values()))
  for (precision, xla), (alone, loop, loss) in results.items():
    plain = results.get((precision, 'off'))
    versus = f', {loss - plain[2]:+.2e} vs XLA off' if plain and xla == 'on' else ''
    print(f'{precision:9s} XLA {xla:3s} training step alone: {alone:.3f} steps/s '
          f'({alone * b:.2f} FOVs/s, x{alone / first_alone:.2f}); full loop: {loop:.3f} '
          f'steps/s ({loop * b:.2f} FOVs/s, x{loop / first_loop:.2f}); loss {loss:.6f}{versus}')


if __name__ == '__main__':
  main()
