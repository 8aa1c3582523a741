"""run_consensus.py: the split consensus of two inference results of the same subvolumes.

Typical use is the forward/reverse recipe: a PolicyPeaks run, then a
PolicyInvertOrigins run of the same box whose seed_policy_args point at the
first run's directory; their consensus keeps only the boundaries both found.

  python run_consensus.py \\
      --segmentation1_dir results/fib25/forward \\
      --segmentation2_dir results/fib25/reverse \\
      --segmentation_output_dir results/fib25/consensus --split_min_size 1000

or with a text ConsensusRequest (the flags above fill the fields it leaves unset):

  python run_consensus.py --consensus_request "$(cat consensus.pbtxt)"
"""

from __future__ import annotations

from absl import flags
from absl import logging
from google.protobuf import text_format

from ffn.inference import consensus_pb2
from ffn.inference.pipelines import consensus
from ffn.utils import checks
from ffn.utils import cli
from ffn.utils import errors

# The manual's recommendation; used when neither the request nor the flag sets it.
RECOMMENDED_SPLIT_MIN_SIZE = 1000

FLAGS = flags.FLAGS

flags.DEFINE_string('consensus_request', None,
                    'ConsensusRequest proto in text format. Optional when the flags below '
                    'give both segmentations and the output directory.')
flags.DEFINE_string('segmentation1_dir', None,
                    'First inference result directory (ConsensusRequest.segmentation1.directory); '
                    'its segment ids and origins are kept where they survive.')
flags.DEFINE_string('segmentation2_dir', None,
                    'Second inference result directory (segmentation2.directory).')
flags.DEFINE_string('segmentation_output_dir', None,
                    'Where the consensus subvolumes are written, as <dir>/<x>/<y>/seg-x_y_z.npz.')
flags.DEFINE_integer('split_min_size', None,
                     'Drop consensus pieces smaller than this many voxels. Default: the '
                     f'request\'s value, else {RECOMMENDED_SPLIT_MIN_SIZE} (the manual\'s advice).')


cli.check_flag_ranges({'split_min_size': checks.NON_NEGATIVE_INT})


def _set_once(request, field: str, value, flag: str) -> None:
  """Copies a flag into an unset request field; fails if the request sets it already."""
  message, _, name = field.rpartition('.')
  target = getattr(request, message) if message else request
  if target.HasField(name) and getattr(target, name) != value:
    cli.fail(f'--{flag}={value!r} conflicts with ConsensusRequest.{field}='
             f'{getattr(target, name)!r}; set it in one place only')
  setattr(target, name, value)


def build_request() -> consensus_pb2.ConsensusRequest:
  """The ConsensusRequest of --consensus_request completed by the other flags."""
  request = consensus_pb2.ConsensusRequest()
  if FLAGS.consensus_request:
    try:
      text_format.Parse(FLAGS.consensus_request, request)
    except text_format.ParseError as e:
      cli.fail(f'--consensus_request is not a valid ConsensusRequest: {e}')
  for flag, field in (('segmentation1_dir', 'segmentation1.directory'),
                      ('segmentation2_dir', 'segmentation2.directory'),
                      ('segmentation_output_dir', 'segmentation_output_dir'),
                      ('split_min_size', 'split_min_size')):
    value = getattr(FLAGS, flag)
    if value is not None:
      _set_once(request, field, value, flag)
  if not request.HasField('split_min_size'):
    request.split_min_size = RECOMMENDED_SPLIT_MIN_SIZE
  for field in ('segmentation1', 'segmentation2'):
    if not getattr(request, field).directory:
      cli.fail(f'no {field} directory: pass --{field}_dir or set '
               f'ConsensusRequest.{field}.directory')
  if not request.segmentation_output_dir:
    cli.fail('no output directory: pass --segmentation_output_dir or set '
             'ConsensusRequest.segmentation_output_dir')
  return request


@cli.guard
def main(argv):
  """Writes the consensus of the two results the flags name."""
  cli.no_arguments(argv)
  request = build_request()
  try:
    # Checked before anything is logged or written, so bad input gives one line.
    corners = consensus.consensus_corners(request)
    logging.info('ConsensusRequest: %s', text_format.MessageToString(request, as_one_line=True))
    paths = consensus.run_consensus(request, corners)
  except (errors.FFNError, OSError) as e:
    cli.fail(str(e))
  logging.info('Consensus of %d subvolume(s) in %s.', len(paths), request.segmentation_output_dir)


def run() -> None:
  """Console-script entry point (ffn-run-consensus)."""
  cli.run(main)


if __name__ == '__main__':
  run()
