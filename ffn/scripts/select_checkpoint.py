"""Chooses the checkpoint that segments a validation box best.

Each checkpoint (--checkpoints, or those of --train_dir, every --every-th)
segments --bounding_box with --inference_request (its model_checkpoint_path
replaced; output in <--output_dir>/<checkpoint name>) and is scored against
--groundtruth: VI split and merge, adapted Rand error, ERL. Prints a table,
writes <--output_dir>/scores.json and scores.png (--metric against the step,
the best marked). Checkpoints already in scores.json are not segmented again.
With --subvolume_size and --overlap, each checkpoint segments the box as a
stitched blockwise run on the blockwise scheduler (--num_workers workers,
or --worker_command), and the stitched volume is what is scored.

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
from ffn.blockwise import box_segmenter
from ffn.inference.request import run_request
from ffn.scripts import blockwise_flags
from ffn.training import import_util
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
blockwise_flags.define_grid_flags(' Given (with --overlap): each checkpoint segments '
                                  '--bounding_box as a stitched blockwise run.')
blockwise_flags.define_worker_flags()
flags.mark_flags_as_required(['inference_request', 'bounding_box', 'groundtruth', 'output_dir'])
cli.check_flag_ranges({'every': checks.POSITIVE_INT})
# The flags that only a blockwise run (--subvolume_size) uses.
_BLOCKWISE_FLAGS = ('overlap', 'min_overlap_size', 'min_overlap_fraction', 'num_workers',
                    'worker_command', 'scheduler_host', 'threads_per_worker', 'max_retries',
                    'block_timeout_secs')


@cli.guard
def main(argv):
  cli.no_arguments(argv)
  if FLAGS.metric == 'erl_nm' and not FLAGS.erl:
    cli.fail('--metric erl_nm needs the ERL; drop --noerl')
  if FLAGS['voxel_size'].present and not FLAGS.erl:
    cli.fail('--voxel_size has no effect with --noerl')
  if FLAGS['every'].present and not FLAGS.train_dir:
    cli.fail('--every applies to --train_dir only')
  request = run_request.parse_request(FLAGS.inference_request)
  box = run_request.parse_bounding_box(FLAGS.bounding_box)
  validation = checkpoint_selection.Validation(
      request=request, box=box, groundtruth=FLAGS.groundtruth,
      voxel_size_xyz=skeletons.check_voxel_size(FLAGS.voxel_size), erl=FLAGS.erl,
      segmenter=_segmenter(request, box))
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


def _segmenter(request, box) -> checkpoint_selection.Segmenter:
  """One run per checkpoint, or a blockwise run with --subvolume_size; bad flags fail here."""
  if FLAGS.subvolume_size is None:
    given = [name for name in _BLOCKWISE_FLAGS if FLAGS[name].present]
    if given:
      cli.fail(f'--{given[0]} applies to blockwise runs only; give --subvolume_size too')
    return checkpoint_selection.SingleRun()
  if FLAGS.overlap is None:
    cli.fail('--subvolume_size needs --overlap (x,y,z), at least the model\'s FOV size')
  blockwise_flags.check_run_flags()
  grid = blockwise_flags.grid_from_flags(box)
  model = import_util.build_model(request.model_name, request.model_args)
  blockwise_flags.check_blocks_hold_fov(grid, tuple(int(v) for v in model.info.input_image_size))
  return box_segmenter.BlockwiseSegmenter(
      grid, FLAGS.min_overlap_size, FLAGS.min_overlap_fraction, FLAGS.num_workers,
      FLAGS.worker_command, FLAGS.scheduler_host, FLAGS.threads_per_worker, FLAGS.max_retries,
      FLAGS.block_timeout_secs)


def run() -> None:
  """The command-line entry point."""
  cli.run(main)


if __name__ == '__main__':
  run()
