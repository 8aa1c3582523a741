"""The result flags the analysis scripts share, defined once, and the ResultSpec they give."""

from __future__ import annotations

from typing import Optional

from absl import flags

from ffn.analysis import results
from ffn.utils import checks
from ffn.utils import cli
from ffn.utils import volumes

FLAGS = flags.FLAGS


def define_result_flags(many_corners: bool = False, segmentation_help: str = '') -> None:
  """Defines --segmentation_dir, --corner, --threshold, --split_cc, --min_size, --segmentation.

  With `many_corners`, --corner repeats and defaults to every subvolume;
  otherwise it is one x,y,z list defaulting to 0,0,0.
  """
  flags.DEFINE_string('segmentation_dir', None, 'Inference output directory holding the results.')
  if many_corners:
    flags.DEFINE_multi_string('corner', None, 'xyz corner (x,y,z) of a result subvolume; '
                              'repeat for several. Default: every subvolume in --segmentation_dir.')
  else:
    flags.DEFINE_list('corner', ['0', '0', '0'], 'xyz corner of the result subvolume in '
                      '--segmentation_dir.')
  flags.DEFINE_float('threshold', None, 'Re-threshold results with their saved .prob maps.')
  flags.DEFINE_boolean('split_cc', True, 'Relabel disconnected pieces of a result segment apart.')
  flags.DEFINE_integer('min_size', 0, 'Drop result segments smaller than this (voxels).')
  flags.DEFINE_string('segmentation', None, 'Segmentation volume spec (path:dataset, a '
                      'TensorStore JSON spec or zarr:///..., n5:///..., precomputed:///...) '
                      'instead of --segmentation_dir.' + segmentation_help)
  cli.check_flag_ranges({'threshold': checks.UNIT, 'min_size': checks.NON_NEGATIVE_INT})


def given() -> bool:
  """Whether --segmentation_dir or --segmentation is set."""
  return FLAGS.segmentation_dir is not None or FLAGS.segmentation is not None


def result_from_flags(required: bool = True) -> Optional[results.Segmentation]:
  """The ResultSpec of --segmentation_dir (with --corner etc.) or the --segmentation spec."""
  if FLAGS.segmentation_dir is not None and FLAGS.segmentation is not None:
    cli.fail('give at most one of --segmentation_dir and --segmentation')
  if FLAGS.segmentation is not None:
    try:
      return volumes.parse_spec(FLAGS.segmentation)
    except volumes.VolumeSpecError as e:
      cli.fail(str(e))
  if FLAGS.segmentation_dir is None:
    if required:
      cli.fail('give exactly one of --segmentation_dir (with --corner) and --segmentation')
    return None
  if isinstance(FLAGS['corner'], flags.MultiFlag):
    corners = tuple(cli.parse_triple(c.split(','), 'corner', valid=checks.NON_NEGATIVE_INT)
                    for c in FLAGS.corner or ()) or None
  else:
    corners = (cli.parse_triple(FLAGS.corner, 'corner', valid=checks.NON_NEGATIVE_INT),)
  return results.ResultSpec(FLAGS.segmentation_dir, corners, threshold=FLAGS.threshold,
                            split_cc=FLAGS.split_cc, min_size=FLAGS.min_size)
