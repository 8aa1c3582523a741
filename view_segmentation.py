#!/usr/bin/env python
"""Shows an image, a segmentation and optionally groundtruth in a local neuroglancer viewer.

  python view_segmentation.py \
    --image third_party/neuroproof_examples/training_sample2/grayscale_maps.h5:raw \
    --segmentation_dir results/fib25/training2 --corner 0,0,0 \
    --groundtruth third_party/neuroproof_examples/training_sample2/groundtruth.h5:stack

Prints the URL to open (served from 127.0.0.1 with neuroglancer's bundled
client; no internet needed) and runs until Ctrl-C.
"""

from __future__ import annotations


from absl import app
from absl import flags
from absl import logging

from ffn.utils import cli
from ffn.utils import viewer as viewer_lib
from ffn.utils import volume_spec

FLAGS = flags.FLAGS

flags.DEFINE_string('image', None, 'Image volume spec path:dataset.')
flags.DEFINE_string('segmentation_dir', None, 'Inference output directory holding the result.')
flags.DEFINE_list('corner', ['0', '0', '0'], 'xyz corner of the result subvolume.')
flags.DEFINE_float('threshold', None, 'Re-threshold the result with its saved .prob map.')
flags.DEFINE_boolean('split_cc', True, 'Relabel disconnected pieces of a result segment apart.')
flags.DEFINE_integer('min_size', 0, 'Drop result segments smaller than this (voxels).')
flags.DEFINE_string('segmentation', None, 'Segmentation volume spec path:dataset (instead of '
                    '--segmentation_dir).')
flags.DEFINE_string('groundtruth', None, 'Groundtruth volume spec path:dataset (optional).')
flags.DEFINE_list('voxel_size', ['8', '8', '8'], 'xyz voxel size in nm.')
flags.DEFINE_string('bind_address', '127.0.0.1', 'Address the viewer server listens on.')
flags.DEFINE_integer('port', 0, 'Port of the viewer server (0: any free port).')
flags.DEFINE_float('timeout_secs', None, 'Stop after this many seconds (default: run until '
                   'Ctrl-C).')


@cli.guard
def main(argv):
  del argv
  if FLAGS.segmentation_dir is not None and FLAGS.segmentation is not None:
    cli.fail('give at most one of --segmentation_dir and --segmentation')
  if not (FLAGS.image or FLAGS.segmentation_dir or FLAGS.segmentation or FLAGS.groundtruth):
    cli.fail('nothing to show: give --image, --segmentation(_dir) and/or --groundtruth')
  layers = []
  try:
    if FLAGS.image:
      layers.append(viewer_lib.Layer('image', volume_spec.open_volume(FLAGS.image), 'image'))
    if FLAGS.segmentation_dir:
      from ffn.inference import storage  # pylint: disable=g-import-not-at-top
      corner_xyz = cli.parse_triple(FLAGS.corner, 'corner')
      labels, _ = storage.load_segmentation(
          FLAGS.segmentation_dir, corner_xyz[::-1], threshold=FLAGS.threshold,
          split_cc=FLAGS.split_cc, min_size=FLAGS.min_size)
      layers.append(viewer_lib.Layer('segmentation', labels, 'segmentation', corner_xyz))
    elif FLAGS.segmentation:
      layers.append(viewer_lib.Layer('segmentation', volume_spec.open_volume(FLAGS.segmentation),
                                     'segmentation'))
    if FLAGS.groundtruth:
      layers.append(viewer_lib.Layer('groundtruth', volume_spec.open_volume(FLAGS.groundtruth),
                                     'segmentation'))
    voxel_size = cli.parse_triple(FLAGS.voxel_size, 'voxel_size', float)
    viewer = viewer_lib.build_viewer(layers, voxel_size, bind_address=FLAGS.bind_address, port=FLAGS.port)
  except ValueError as e:  # VolumeSpecError, missing results, bad layers.
    cli.fail(str(e))
  logging.info('layers: %s', ', '.join(layer.name for layer in layers))
  print(f'neuroglancer viewer: {viewer.get_viewer_url()}', flush=True)
  print('press Ctrl-C to stop', flush=True)
  viewer_lib.serve_forever(viewer, FLAGS.timeout_secs)


if __name__ == '__main__':
  app.run(main)
