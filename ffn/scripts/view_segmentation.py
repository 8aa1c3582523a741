"""Shows an image, a segmentation and optionally groundtruth in a local neuroglancer viewer.

  python view_segmentation.py \\
    --image third_party/neuroproof_examples/training_sample2/grayscale_maps.h5:raw \\
    --segmentation_dir results/fib25/training2 --corner 0,0,0 \\
    --groundtruth third_party/neuroproof_examples/training_sample2/groundtruth.h5:stack

Prints the URL to open (served from 127.0.0.1 with neuroglancer's bundled
client; no internet needed) and runs until Ctrl-C. The view starts on the
segmentation, the groundtruth layer hidden (click its name to show it); the
voxel size is --voxel_size when given, else the one the volumes' own metadata
records, else 10,10,10 nm (the bundled sample's).
"""

from __future__ import annotations


from absl import flags
from absl import logging

from ffn.analysis import results
from ffn.analysis import viewer as viewer_lib
from ffn.scripts import result_flags
from ffn.utils import checks
from ffn.utils import cli
from ffn.utils import errors
from ffn.utils import volumes

FLAGS = flags.FLAGS

flags.DEFINE_string('image', None, 'Image volume spec path:dataset.')
result_flags.define_result_flags()
flags.DEFINE_string('groundtruth', None, 'Groundtruth volume spec path:dataset (optional).')
flags.DEFINE_list('voxel_size', ['10', '10', '10'], 'xyz voxel size in nm; when not given, the '
                  "one the segmentation's, image's or groundtruth's own metadata records "
                  '(voxel_size_xyz, funlib voxel_size, N5/CREMI resolution, precomputed info), '
                  'else this default (the bundled sample\'s).')
flags.DEFINE_boolean('show_groundtruth', False, 'Show the groundtruth layer at first (it is '
                     'listed either way; a click on its name shows or hides it).')
flags.DEFINE_string('bind_address', '127.0.0.1', 'Address the viewer server listens on.')
flags.DEFINE_integer('port', 0, 'Port of the viewer server (0: any free port).')
flags.DEFINE_float('timeout_secs', None, 'Stop after this many seconds (default: run until '
                   'Ctrl-C).')
cli.check_flag_ranges({'port': checks.Range(0, 65535, integer=True),
                       'timeout_secs': checks.NON_NEGATIVE})


@cli.guard
def main(argv):
  del argv
  source = result_flags.result_from_flags(required=False)
  if not (FLAGS.image or source or FLAGS.groundtruth):
    cli.fail('nothing to show: give --image, --segmentation(_dir) and/or --groundtruth')
  layers = []
  try:
    if FLAGS.image:
      layers.append(viewer_lib.Layer('image', volumes.open_volume(FLAGS.image), 'image'))
    if isinstance(source, results.ResultSpec):
      layers.append(viewer_lib.Layer('segmentation', source.load(source.corner_xyz),
                                     'segmentation', source.corner_xyz))
    elif source is not None:
      layers.append(viewer_lib.Layer('segmentation', volumes.open_volume(source), 'segmentation'))
    if FLAGS.groundtruth:
      layers.append(viewer_lib.Layer('groundtruth', volumes.open_volume(FLAGS.groundtruth),
                                     'segmentation', visible=FLAGS.show_groundtruth))
    given = cli.parse_triple(FLAGS.voxel_size, 'voxel_size', float, checks.POSITIVE)
    voxel_size, why = viewer_lib.choose_voxel_size(
        layers, given if FLAGS['voxel_size'].present else None, default_xyz=given)
    logging.info('voxel size %s nm (xyz), %s', voxel_size, why)
    viewer = viewer_lib.build_viewer(layers, voxel_size, bind_address=FLAGS.bind_address,
                                     port=FLAGS.port)
  except errors.FFNError as e:  # VolumeSpecError, missing results, bad layers.
    cli.fail(str(e))
  logging.info('layers: %s', ', '.join(layer.name for layer in layers))
  print(f'neuroglancer viewer: {viewer.get_viewer_url()}', flush=True)
  print('press Ctrl-C to stop', flush=True)
  viewer_lib.serve_forever(viewer, FLAGS.timeout_secs)


def run() -> None:
  """The command-line entry point."""
  cli.run(main)


if __name__ == '__main__':
  run()
