"""run_resegmentation.py: agglomerates a segmentation by resegmenting candidate segment pairs.

For each pair (segments touching in the segmentation, or a listed pair) FFN
inference is redone around the pair's decision point, seeded once in each
segment, and the pair is merged if both runs agree and each reproduces both
segments (by default upstream's conservative rule: IoU > 0.8, all
consistencies > 0.6, deleted voxel fraction < 0.02 on one side).

  python run_resegmentation.py \\
      --resegmentation_request "$(cat configs/resegmentation_sample.pbtxt)" \\
      --segmentation results/fib25/consensus.h5:segmentation \\
      --voxel_size 10,10,10

Writes per-pair results, decisions.jsonl and the agglomerated segmentation
(--output_volume) under the request's output_directory.
"""

from __future__ import annotations

import json
import os

from absl import flags
from absl import logging
from google.protobuf import text_format

from ffn.inference import inference_pb2
from ffn.inference.pipelines import resegmentation_analysis
from ffn.inference.pipelines import run_agglomeration
from ffn.utils import checks
from ffn.utils import cli
from ffn.utils import errors
from ffn.utils import volumes

FLAGS = flags.FLAGS

flags.DEFINE_string('resegmentation_request', None,
                    'ResegmentationRequest proto in text format: inference settings (as for '
                    'run_inference.py), radius, analysis_radius, output_directory, ... Its '
                    'points, if any, are the pairs to resegment.')
flags.DEFINE_string('segmentation', None,
                    'Segmentation to agglomerate, in the image\'s voxel coordinates: '
                    f'{volumes.SPEC_FORMS}. Sets inference.init_segmentation (or set that in the '
                    'request).')
flags.DEFINE_string('pairs', None,
                    'Text file of pairs to resegment, one "id_a,id_b" or "id_a,id_b,x,y,z" per '
                    'line. Default: every pair of segments within --max_pair_distance.')
flags.DEFINE_integer('max_pair_distance', 1,
                     'Segments this close (voxels, along an axis) are candidate pairs; 1 = touching.')
flags.DEFINE_list('voxel_size', ['1', '1', '1'],
                  'xyz voxel size, for the distance transforms that place seeds and score.')
flags.DEFINE_float('min_iou', resegmentation_analysis.MergeRule.min_iou,
                   'Merge only if the two resegmented objects overlap with more than this IoU.')
flags.DEFINE_float('min_consistency', resegmentation_analysis.MergeRule.min_consistency,
                   'Merge only if each run recovers more than this fraction of both segments.')
flags.DEFINE_float('max_deleted_fraction', resegmentation_analysis.MergeRule.max_deleted_fraction,
                   'Merge only if one run deleted fewer voxels than this fraction of its object.')
flags.DEFINE_float('threshold', 0.5,
                   'Probability at which the resegmented objects are scored.')
flags.DEFINE_string('output_volume', None,
                    'Where the agglomerated segmentation goes (a new volume: '
                    f'{volumes.SPEC_FORMS}). Default: '
                    '<output_directory>/agglomerated.h5:segmentation.')
flags.DEFINE_boolean('overwrite', False, 'Replace an existing --output_volume.')
flags.mark_flag_as_required('resegmentation_request')
cli.check_flag_ranges({'max_pair_distance': checks.POSITIVE_INT, 'min_iou': checks.UNIT,
                       'min_consistency': checks.UNIT, 'max_deleted_fraction': checks.UNIT,
                       'threshold': checks.PROBABILITY})


def _set_volume(decorated: inference_pb2.DecoratedVolume, spec: str) -> None:
  """Points a DecoratedVolume at a volume spec of any accepted form."""
  with cli.fail_on(errors.FFNError):
    parsed = volumes.parse_spec(spec)
    if isinstance(parsed, volumes.VolumeSpec):
      decorated.hdf5 = str(parsed)
    else:
      decorated.tensorstore = json.dumps(volumes.tensorstore_spec(parsed))


def build_request() -> inference_pb2.ResegmentationRequest:
  """The ResegmentationRequest of the flags; fails with one line on bad input."""
  request = inference_pb2.ResegmentationRequest()
  try:
    text_format.Parse(FLAGS.resegmentation_request, request)
  except text_format.ParseError as e:
    cli.fail(f'--resegmentation_request is not a valid ResegmentationRequest: {e}')
  init = request.inference.init_segmentation
  if FLAGS.segmentation:
    if init.WhichOneof('volume_path') is not None:
      cli.fail('--segmentation and inference.init_segmentation are both set; use one')
    _set_volume(init, FLAGS.segmentation)
  if init.WhichOneof('volume_path') is None:
    cli.fail('no segmentation: pass --segmentation path.h5:dataset or set '
             'inference.init_segmentation')
  if not request.output_directory:
    cli.fail('ResegmentationRequest.output_directory must be set')
  for field in ('radius',):
    r = getattr(request, field)
    if min(r.x, r.y, r.z) <= 0:
      cli.fail(f'ResegmentationRequest.{field} must be positive on every axis, got '
               f'{text_format.MessageToString(r, as_one_line=True)!r}')
  if request.HasField('analysis_radius'):
    ar, r = request.analysis_radius, request.radius
    if any(not 0 <= a <= b for a, b in ((ar.x, r.x), (ar.y, r.y), (ar.z, r.z))):
      cli.fail('ResegmentationRequest.analysis_radius must lie within radius on every axis')
  if request.max_retry_iters < 1:
    cli.fail(f'ResegmentationRequest.max_retry_iters is {request.max_retry_iters}; expected >= 1')
  with cli.fail_on(errors.FFNError):
    checks.check_number(request.segment_recovery_fraction,
                        'ResegmentationRequest.segment_recovery_fraction', checks.UNIT)
  return request


def _output_volume(request) -> str:
  """--output_volume, or its default; fails if it exists without --overwrite."""
  spec = FLAGS.output_volume or os.path.join(request.output_directory,
                                             'agglomerated.h5:segmentation')
  try:
    path = run_agglomeration.output_path(spec)
  except errors.FFNError as e:
    cli.fail(f'--output_volume: {e}')
  if path is not None and os.path.exists(path) and not FLAGS.overwrite:
    cli.fail(f'{path} exists; pass --overwrite to replace it')
  inputs = [v.hdf5 or v.tensorstore for v in (request.inference.init_segmentation,
                                               request.inference.image)]
  with cli.fail_on(errors.FFNError):
    volumes.check_output_not_input(spec, [i for i in inputs if i], '--output_volume')
  return spec


@cli.guard
def main(argv):
  """Resegments the candidate pairs, writes decisions and the agglomerated segmentation."""
  cli.no_arguments(argv)
  request = build_request()
  output_volume = _output_volume(request)
  voxel_size = cli.parse_triple(FLAGS.voxel_size, 'voxel_size', float, checks.POSITIVE)
  rule = resegmentation_analysis.MergeRule(FLAGS.min_iou, FLAGS.min_consistency,
                                           FLAGS.max_deleted_fraction)
  try:
    pairs = run_agglomeration.read_pairs(FLAGS.pairs) if FLAGS.pairs else None
    decisions = run_agglomeration.run_agglomeration(
        request, output_volume, voxel_size[::-1], rule, FLAGS.threshold, pairs,
        FLAGS.max_pair_distance)
  except (errors.FFNError, OSError) as e:
    cli.fail(str(e))
  logging.info('%d pair(s) decided, %d merged; segmentation written to %s.', len(decisions),
               sum(d.merge for d in decisions), output_volume)


def run() -> None:
  """Console-script entry point (ffn-run-resegmentation)."""
  cli.run(main)


if __name__ == '__main__':
  run()
