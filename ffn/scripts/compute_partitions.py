"""Computes a partition map (local object-mask fraction classes) of a label volume.

The map drives balanced sampling of training locations (build_coordinates.py).
Example, from the repository root:

  python compute_partitions.py \\
      --input_volume third_party/neuroproof_examples/training_sample2/groundtruth.h5:stack \\
      --output_volume third_party/neuroproof_examples/training_sample2/af.h5:af \\
      --thresholds 0.025,0.05,0.075,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9 \\
      --lom_radius 24,24,24 --min_size 10000
"""

from __future__ import annotations


from absl import flags
from google.protobuf import text_format

from ffn.inference import inference_pb2
from ffn.training import partitions
from ffn.utils import checks
from ffn.utils import cli
from ffn.utils import volumes

FLAGS = flags.FLAGS

flags.DEFINE_string('input_volume', None, f'Label volume (z,y,x integer ids): {volumes.SPEC_FORMS}.')
flags.DEFINE_string('output_volume', None, f'Where to write the partition map: {volumes.SPEC_FORMS}.')
flags.DEFINE_list('thresholds', None,
                  'Ascending active-voxel fractions in (0, 1] separating the partitions.')
flags.DEFINE_list('lom_radius', None, 'Local object mask (LOM) radius as x,y,z.')
flags.DEFINE_list('id_whitelist', None,
                  'Object ids to partition (others stay 0); default: all.')
flags.DEFINE_list('exclusion_regions', None,
                  'Spheres x,y,z,r[,x,y,z,r...] (global voxels) whose voxels are set to 255.')
flags.DEFINE_string('mask_configs', None,
                    'MaskConfigs proto in text format; voxels whose LOM touches a masked '
                    'voxel are set to 255.')
flags.DEFINE_integer('min_size', 10000,
                     'Objects with fewer voxels are erased (set to 0) before partitioning.')


cli.check_flag_ranges({'min_size': checks.NON_NEGATIVE_INT})


def _parse_int_list(name: str, values) -> list[int]:
  try:
    return [int(v) for v in values]
  except ValueError:
    raise partitions.PartitionError(f'--{name} must be integers, got {",".join(values)!r}')


def _parse_float_list(name: str, values) -> list[float]:
  try:
    return [float(v) for v in values]
  except ValueError:
    raise partitions.PartitionError(f'--{name} must be numbers, got {",".join(values)!r}')


def _parse_mask_configs(text):
  if not text:
    return None
  try:
    return text_format.Parse(text, inference_pb2.MaskConfigs())
  except text_format.ParseError as e:
    raise partitions.PartitionError(f'--mask_configs is not a text MaskConfigs proto: {e}')


@cli.guard
def main(argv):
  cli.no_arguments(argv)
  with cli.fail_on(partitions.PartitionError, volumes.VolumeSpecError):
    partitions.run(
        input_volume=FLAGS.input_volume,
        output_volume=FLAGS.output_volume,
        thresholds=_parse_float_list('thresholds', FLAGS.thresholds),
        lom_radius=_parse_int_list('lom_radius', FLAGS.lom_radius),
        id_whitelist=partitions.parse_id_whitelist(FLAGS.id_whitelist),
        exclusion_regions=partitions.parse_exclusion_regions(FLAGS.exclusion_regions),
        mask_configs=_parse_mask_configs(FLAGS.mask_configs),
        min_size=FLAGS.min_size)


def run() -> None:
  """The command-line entry point."""
  flags.mark_flags_as_required(['input_volume', 'output_volume', 'thresholds', 'lom_radius'])
  cli.run(main)


if __name__ == '__main__':
  run()
