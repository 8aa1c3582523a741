#!/usr/bin/env python
"""The forward/reverse consensus recipe on a crop of the bundled sample, scored against groundtruth.

  python bench/consensus_sample.py [--size 100] [--output_dir results/fib25/consensus_bench]

Segments the crop start (0,0,0), size `--size`^3 (xyz) of training_sample2
with the bundled checkpoint and the sample config twice: forward (PolicyPeaks)
and reverse (PolicyInvertOrigins over the forward run's seeds), computes their
split consensus (`--split_min_size`, default 1000) and prints the VI split and
merge (bits) of each against the groundtruth, as a Markdown table for the
README. Finished runs in `--output_dir` are reused, so it can be rerun to
print the table again.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import tempfile

from absl import app
from absl import flags
from google.protobuf import text_format

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
from ffn.analysis import evaluation
from ffn.analysis import results
from ffn.inference import consensus_pb2
from ffn.inference import inference_pb2
from ffn.inference.pipelines import consensus
from ffn.inference.request import run_request
from ffn.utils import bounding_box
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_integer('size', 100, 'Edge of the cubic crop to segment (voxels).')
flags.DEFINE_integer('split_min_size', 1000, 'ConsensusRequest.split_min_size.')
flags.DEFINE_string('output_dir', None,
                    'Where to keep the three results (default: a temporary directory).')
flags.DEFINE_string('config', str(REPO_ROOT / 'configs' / 'inference_training_sample2.pbtxt'),
                    'The forward run\'s InferenceRequest (text); the reverse run changes only '
                    'the seed policy and output directory.')
flags.DEFINE_string('groundtruth', str(REPO_ROOT / 'third_party' / 'neuroproof_examples' /
                                       'training_sample2' / 'groundtruth.h5') + ':stack',
                    'Groundtruth volume spec.')

CORNER_XYZ = (0, 0, 0)


def _request(out_dir: str, reverse_of: str | None = None) -> inference_pb2.InferenceRequest:
  """The sample request writing to `out_dir`, seeded from `reverse_of`'s origins if given."""
  request = text_format.Parse(pathlib.Path(FLAGS.config).read_text(),
                              inference_pb2.InferenceRequest())
  for field in ('model_checkpoint_path',):
    path = getattr(request, field)
    if path and not os.path.isabs(path):
      setattr(request, field, str(REPO_ROOT / path))
  if request.image.hdf5 and not os.path.isabs(request.image.hdf5):
    request.image.hdf5 = str(REPO_ROOT / request.image.hdf5)
  request.segmentation_output_dir = out_dir
  if reverse_of is not None:
    request.seed_policy = 'PolicyInvertOrigins'
    request.seed_policy_args = json.dumps({'segmentation_dir': reverse_of})
  return request


def _score(directory: str) -> dict[str, evaluation.EvaluationResult]:
  """VI of the result at the crop corner, with segmentation 0 as singletons and as one segment."""
  source = results.single_result(directory, CORNER_XYZ)
  return {mode: evaluation.evaluate(source, FLAGS.groundtruth, seg_zero=mode)[0]
          for mode in ('singletons', 'segment')}


def main(argv):
  del argv
  out = FLAGS.output_dir or tempfile.mkdtemp(prefix='consensus_bench_')
  dirs = {name: os.path.join(out, name) for name in ('forward', 'reverse', 'consensus')}
  box = bounding_box.BoundingBox(start=CORNER_XYZ, size=(FLAGS.size,) * 3)
  run_request.run_inference(_request(dirs['forward']), [box])
  run_request.run_inference(_request(dirs['reverse'], reverse_of=dirs['forward']), [box])

  request = consensus_pb2.ConsensusRequest(
      segmentation_output_dir=dirs['consensus'], split_min_size=FLAGS.split_min_size,
      type=consensus_pb2.ConsensusRequest.CONSENSUS_SPLIT)
  request.segmentation1.directory = dirs['forward']
  request.segmentation2.directory = dirs['reverse']
  consensus.run_consensus(request)

  print(f'\nCrop start {CORNER_XYZ} size {FLAGS.size}^3 (xyz), results in {out}; '
        f'split_min_size {FLAGS.split_min_size}.\n')
  print('| run | VI split | VI merge | VI total | segments | VI split (0 = one segment) '
        '| VI merge (0 = one segment) |')
  print('| --- | --- | --- | --- | --- | --- | --- |')
  for name, directory in dirs.items():
    scores = _score(directory)
    s, z = scores['singletons'], scores['segment']
    print(f'| {name} | {s.vi_split:.3f} | {s.vi_merge:.3f} | {s.vi_total:.3f} | '
          f'{s.num_segments} | {z.vi_split:.3f} | {z.vi_merge:.3f} |')


if __name__ == '__main__':
  app.run(main)
