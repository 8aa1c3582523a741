"""Samples balanced training coordinates from partition volumes into a GZIP TFRecord.

Example, from the repository root:

  python build_coordinates.py \\
      --partition_volumes validation1:third_party/neuroproof_examples/training_sample2/af.h5:af \\
      --coordinate_output third_party/neuroproof_examples/training_sample2/tf_record_file \\
      --margin 24,24,24
"""

from __future__ import annotations


from absl import flags

from ffn.training import coordinates
from ffn.utils import cli
from ffn.utils import volumes

FLAGS = flags.FLAGS

flags.DEFINE_list('partition_volumes', None, 'Partition volumes as <volume_name>:<spec>, the spec '
                  f'one of {volumes.SPEC_FORMS}; the names must match those given to training.')
flags.DEFINE_string('coordinate_output', None,
                    'Path of the GZIP TFRecord file to write the coordinates to.')
flags.DEFINE_list('margin', None,
                  'z,y,x voxels next to the volume border excluded from sampling; normally '
                  'the training FOV radius (fov_size // 2 + deltas).')


@cli.guard
def main(argv):
  cli.no_arguments(argv)
  with cli.fail_on(coordinates.CoordinatesError, volumes.VolumeSpecError):
    margin_zyx = coordinates.validate_margin(FLAGS.margin)
    coordinates.build_coordinates(FLAGS.partition_volumes, FLAGS.coordinate_output, margin_zyx)


def run() -> None:
  """The command-line entry point."""
  flags.mark_flags_as_required(['partition_volumes', 'coordinate_output', 'margin'])
  cli.run(main)


if __name__ == '__main__':
  run()
