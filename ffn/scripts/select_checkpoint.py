"""Chooses the checkpoint that segments a validation box best.

Each checkpoint (--checkpoints, or those of --train_dir, every --every-th)
segments --bounding_box with --inference_request (its model_checkpoint_path
replaced; output in <--output_dir>/<checkpoint name>) and is scored against
--groundtruth: VI split and merge, adapted Rand error, ERL. Prints a table,
writes <--output_dir>/scores.json and scores.png (--metric against the step,
the best marked). Checkpoints already in scores.json are not segmented again.

  python select_checkpoint.py \
    --inference_request="$(cat configs/inference_training_sample2_fast.pbtxt)" \
    --bounding_box 'start { x:100 y:100 z:100 } size { x:60 y:60 z:60 }' \
    --groundtruth third_party/neuroproof_examples/training_sample2/groundtruth.h5:stack \
    --train_dir /tmp/ffn_train --every 2 --output_dir /tmp/ffn_selection
"""

from __future__ import annotations

from absl import flags

from ffn.analysis import checkpoint_selection
from ffn.analysis import skeletons
from ffn.analysis import validation as validation_lib
from ffn.inference.request import run_request
from ffn.utils import checks
from ffn.utils import cli

FLAGS = flags.FLAGS

flags.DEFINE_string('inference_request', None, 'InferenceRequest proto in text format; its '
                    'model_checkpoint_path and segmentation_output_dir are replaced per '
                    'checkpoint.')
flags.DEFINE_string('bounding_box', None, 'Validation box, a text BoundingBox proto in global '
                    'xyz voxels, e.g. "start { x:0 y:0 z:0 } size { x:60 y:60 z:60 }".')
flags.DEFINE_string('groundtruth', None, 'Groundtruth volume spec path:dataset (0 = unlabelled).')
flags.DEFINE_list('checkpoints', None, 'Checkpoint prefixes (model.ckpt-<step>) to score.')
flags.DEFINE_string('train_dir', None, 'Score the checkpoints in this directory instead.')
flags.DEFINE_integer('every', 1, 'With --train_dir: every N-th checkpoint in step order.')
flags.DEFINE_string('output_dir', None, 'Segmentations, scores.json and scores.png go here.')
flags.DEFINE_enum('metric', 'vi_total', list(checkpoint_selection.METRICS),
                  'The metric that chooses the best checkpoint (erl_nm: higher is better; '
                  'the others: lower).')
flags.DEFINE_list('voxel_size', ['10', '10', '10'], 'xyz voxel size in nm for the ERL.')
flags.DEFINE_boolean('erl', True, 'Score ERL on groundtruth skeletons (kimimaro); --noerl '
                     'skips it.')
flags.DEFINE_string('summary_dir', None, 'Also write validation/<metric> TensorBoard scalars '
                    'of each newly scored checkpoint, at its step, here (e.g. the train_dir).')
flags.mark_flags_as_required(['inference_request', 'bounding_box', 'groundtruth', 'output_dir'])
cli.check_flag_ranges({'every': checks.POSITIVE_INT})


@cli.guard
def main(argv):
  cli.no_arguments(argv)
  if FLAGS.metric == 'erl_nm' and not FLAGS.erl:
    cli.fail('--metric erl_nm needs the ERL; drop --noerl')
  if FLAGS['voxel_size'].present and not FLAGS.erl:
    cli.fail('--voxel_size has no effect with --noerl')
  if FLAGS['every'].present and not FLAGS.train_dir:
    cli.fail('--every applies to --train_dir only')
  validation = checkpoint_selection.Validation(
      request=run_request.parse_request(FLAGS.inference_request),
      box=run_request.parse_bounding_box(FLAGS.bounding_box), groundtruth=FLAGS.groundtruth,
      voxel_size_xyz=skeletons.check_voxel_size(FLAGS.voxel_size), erl=FLAGS.erl)
  prefixes = checkpoint_selection.find_checkpoints(FLAGS.checkpoints, FLAGS.train_dir,
                                                   FLAGS.every)
  on_scored = lambda row: None
  if FLAGS.summary_dir:
    on_scored = validation_lib.validation_writer(FLAGS.summary_dir)
  with cli.deferred_interrupt():
    selection = checkpoint_selection.select_checkpoints(
        validation, prefixes, FLAGS.output_dir, FLAGS.metric, on_scored=on_scored,
        stop_requested=cli.stop_requested)
  print(checkpoint_selection.format_table(selection))
  print(f'scored {len(selection.scored)}, already scored {len(selection.reused)}; '
        f'scores in {FLAGS.output_dir}/{checkpoint_selection.SCORES_FILE}, plot in '
        f'{FLAGS.output_dir}/{checkpoint_selection.PLOT_FILE}')


def run() -> None:
  """The command-line entry point."""
  cli.run(main)


if __name__ == '__main__':
  run()
