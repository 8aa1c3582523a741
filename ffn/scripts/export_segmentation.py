"""Exports inference results (or any HDF5 volume) to HDF5, zarr, N5, precomputed or PNG.

  python export_segmentation.py --segmentation_dir results/fib25/training2 \\
    --output results/fib25/training2_export.zarr --voxel_size 10,10,10

Result subvolumes are placed at their global corners in one volume (ids of
later subvolumes shifted so they do not collide). The output is written chunk
by chunk into a temporary name and renamed when complete.
"""

from __future__ import annotations


from absl import flags
from absl import logging

from ffn.analysis import export
from ffn.scripts import result_flags
from ffn.utils import checks
from ffn.utils import cli
from ffn.utils import errors

FLAGS = flags.FLAGS

result_flags.define_result_flags(many_corners=True)
flags.DEFINE_string('output', None, 'Output file (hdf5) or directory (other formats).')
flags.DEFINE_string('output_format', None, f'One of {export.FORMATS}; default: from the '
                    'extension of --output (.h5/.hdf5, .zarr, .n5).')
flags.DEFINE_string('dataset', 'segmentation', 'Name of the array inside an HDF5 file, zarr '
                    'group or N5 container output.')
flags.DEFINE_enum('zarr_format', None, ['2', '3'], 'zarr output: zarr v2 or v3 (default 2).')
flags.DEFINE_integer('downsample', 0, 'precomputed output: extra scales, each halving x, y and '
                     'z (the most frequent id of 2x2x2 wins).')
flags.DEFINE_boolean('meshes', False, 'precomputed output: mesh every segment (zmesh) for '
                     'neuroglancer\'s 3-D view.')
flags.DEFINE_list('voxel_size', ['1', '1', '1'], 'xyz voxel size in nm, recorded with the data.')
flags.DEFINE_list('offset', None, 'xyz offset in voxels recorded with the data; default: the '
                  'results\' global corner (0,0,0 for a volume spec).')
flags.DEFINE_list('chunk_size', ['64', '64', '64'], 'xyz chunk size of the output.')
flags.DEFINE_enum('png_mode', 'color', ['color', 'gray16'], 'PNG output: a colour per id, or '
                  'the ids themselves as 16-bit grey.')
flags.DEFINE_boolean('overwrite', False, 'Replace an existing output.')
cli.check_flag_ranges({'downsample': checks.Range(0, 16, integer=True)})


@cli.guard
def main(argv):
  del argv
  if FLAGS.output is None:
    cli.fail('--output is required')
  source = result_flags.result_from_flags()
  geometry = export.Geometry(
      voxel_size_xyz=cli.parse_triple(FLAGS.voxel_size, 'voxel_size', float, checks.POSITIVE),
      offset_xyz=cli.parse_triple(FLAGS.offset, 'offset') if FLAGS.offset else None)
  try:
    output_format = export.export(
        source, FLAGS.output, FLAGS.output_format, geometry=geometry, overwrite=FLAGS.overwrite,
        dataset_name=FLAGS.dataset, chunk_xyz=cli.parse_triple(FLAGS.chunk_size, 'chunk_size',
                                                                 valid=checks.POSITIVE_INT),
        png_mode=FLAGS.png_mode,
        zarr_format=int(FLAGS.zarr_format) if FLAGS.zarr_format else None,
        downsample=FLAGS.downsample, meshes=FLAGS.meshes)
  except errors.FFNError as e:  # ExportError, VolumeSpecError, missing results.
    cli.fail(str(e))
  logging.info('wrote %s (%s)', FLAGS.output, output_format)
  print(f'wrote {FLAGS.output} ({output_format})')


def run() -> None:
  """The command-line entry point."""
  cli.run(main)


if __name__ == '__main__':
  run()
