#!/usr/bin/env python
"""Inference speed of each engine and precision on one crop of the bundled sample.

  python bench/inference.py [--size 100] [--runs tensorflow:float32,openvino:bfloat16,openvino:bfloat16:2]

Segments the crop start (0,0,0), size `--size`^3 (xyz) of training_sample2
with the bundled checkpoint and the sample config once per engine:precision of
`--runs` (default: TensorFlow and OpenVINO, each in float32 and bfloat16, and
OpenVINO bfloat16 growing 2 objects at once), in one process, and prints for
each:
  * FOVs, wall time and FOVs/s of the whole subvolume (image, seeds, every FOV,
    saving), and FOVs/s as a ratio to the first run (TensorFlow float32);
  * the model-call time per FOV, and the time outside it, per FOV, as a share
    of the wall time and of the model time (one object at a time only);
  * with objects grown at once (`engine:precision:N`), FOVs/s counts the FOVs
    of the objects added; `redone` is the share of model calls spent on FOVs
    grown again, in vain or abandoned (see ffn/inference/growing/pool.py);
  * how far the segmentation is from the first run's (voxels labelled
    differently after matching objects by their largest overlap).
Model restore, conversion, compilation and a first warm-up call (once per run)
are not in the times; they are printed as set-up.
Where reduced precision would be emulated, float32 runs and the table says so.
"""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
from ffn.inference import inference_pb2
from ffn.inference.engines import settings as engine_settings
from ffn.inference.io import results
from ffn.inference.request import run_request
from ffn.inference.request import runner as runner_lib
from ffn.utils import bounding_box
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_integer('size', 100, 'Edge of the cubic crop to segment (voxels).')
flags.DEFINE_list('runs', ['tensorflow:float32', 'tensorflow:bfloat16', 'openvino:float32',
                           'openvino:bfloat16', 'openvino:bfloat16:2'],
                  'engine:precision[:objects grown at once] to run, in order; ratios are '
                  'to the first.')
flags.DEFINE_string('output_dir', None,
                    'Where to keep the segmentations (default: a temporary directory).')
flags.DEFINE_string('config', str(REPO_ROOT / 'configs' / 'inference_training_sample2.pbtxt'),
                    'InferenceRequest text file (its engine and precision are replaced).')


class _TimedModel:
  """Wraps an engine so that the time inside predict_logits (to numpy) is measured."""

  def __init__(self, model):
    self._model = model
    self.info = model.info
    self.seconds = 0.0
    self.calls = 0

  def predict_logits(self, image, seed):
    start = time.perf_counter()
    out = self._model.predict_logits(image, seed)
    out = out.numpy() if hasattr(out, 'numpy') else out
    self.seconds += time.perf_counter() - start
    self.calls += 1
    return out


def _parse_run(text: str) -> tuple[str, str, int]:
  engine, precision, *objects = text.split(':')
  engine_settings.check_names(engine, precision)
  if len(objects) > 1 or (objects and not objects[0].isdigit()):
    raise app.UsageError(f'--runs entry {text!r}: expected engine:precision[:objects]')
  return engine, precision, int(objects[0]) if objects else 1


def _request(engine: str, precision: str, objects: int,
             out_dir: str) -> inference_pb2.InferenceRequest:
  request = run_request.parse_request(pathlib.Path(FLAGS.config).read_text())
  request.segmentation_output_dir = out_dir
  request.checkpoint_interval = 0
  request.engine = inference_pb2.InferenceRequest.Engine.Value(engine.upper())
  request.precision = inference_pb2.InferenceRequest.Precision.Value(precision.upper())
  request.concurrent_objects = objects
  return request


def _differing_voxels(seg: np.ndarray, ref: np.ndarray) -> int:
  """Voxels whose object differs from the reference's best-overlapping one (0 matches 0)."""
  pairs, counts = np.unique(np.stack([seg.ravel(), ref.ravel()]), axis=1, return_counts=True)
  best = {}
  for (a, b), n in zip(pairs.T, counts):
    if a and (a not in best or n > best[a][1]):
      best[a] = (b, n)
  agree = sum(n for a, (b, n) in best.items() if b) + int(np.sum((seg == 0) & (ref == 0)))
  return int(seg.size - agree)


# What growing objects at once did (see ffn/inference/growing/pool.py).
_POOL_COUNTERS = ('objects-regrown', 'objects-restarted', 'objects-grown-in-vain',
                  'objects-abandoned', 'fovs-replayed')


def _run_one(engine: str, precision: str, objects: int, out_dir: str, size: int) -> dict:
  """Segments the crop with one engine, precision and object count; returns its numbers."""
  timed = []

  def warmed_and_timed(instance):
    # The first call traces (TensorFlow) or allocates; it is set-up, not inference.
    zeros = np.zeros((1,) + tuple(instance.info.input_image_size[::-1]) + (1,), np.float32)
    instance.predict_logits(zeros, zeros)
    timed.append(_TimedModel(instance))
    return timed[-1]

  start = time.perf_counter()
  with runner_lib.Runner(_request(engine, precision, objects, out_dir),
                         engine_hook=warmed_and_timed) as runner:
    setup = time.perf_counter() - start
    start = time.perf_counter()
    canvas = runner.segment(bounding_box.BoundingBox(start=(0, 0, 0), size=(size,) * 3))
  wall = time.perf_counter() - start
  seg, _ = results.load_segmentation(out_dir, (0, 0, 0), split_cc=False)
  counters = dict(canvas.counters)
  computed = sum(t.calls for t in timed)
  kept = counters['fovs-of-objects'].value
  return dict(settings=runner.engine_settings, objects_at_once=objects, setup=setup,
              wall=wall, fovs=kept, redone=(computed - kept) / max(computed, 1),
              pool={k: counters[k].value for k in _POOL_COUNTERS if k in counters},
              model=sum(t.seconds for t in timed), objects=len(canvas.origins), seg=seg)


def main(argv):
  del argv
  os.chdir(REPO_ROOT)
  runs = [_parse_run(r) for r in FLAGS.runs]
  measured = []
  with tempfile.TemporaryDirectory() as tmp_dir:
    for i, (engine, precision, objects) in enumerate(runs):
      # Numbered, so that a run listed twice segments again instead of finding a result.
      out_dir = os.path.join(FLAGS.output_dir or tmp_dir, f'{i}_{engine}_{precision}_{objects}')
      logging.info('Running %s %s (%d at once) into %s', engine, precision, objects, out_dir)
      measured.append(_run_one(engine, precision, objects, out_dir, FLAGS.size))

  first = measured[0]
  base_rate = first['fovs'] / first['wall']
  print(f'crop: start (0,0,0) size {FLAGS.size}^3; {os.cpu_count()} CPUs; '
        f'CPU offers {first["settings"].cpu}')
  print(f'{"engine":10s} {"precision":9s} {"at once":>7s} {"FOVs":>6s} {"redone":>6s} '
        f'{"objs":>5s} {"wall s":>7s} '
        f'{"FOVs/s":>7s} {"x first":>7s} {"model ms/FOV":>12s} {"outside ms/FOV":>14s} '
        f'{"outside % wall":>14s} {"outside % model":>15s} {"voxels != first":>15s} '
        f'{"set-up s":>8s}')
  for r in measured:
    s = r['settings']
    precision = s.precision if s.precision == s.requested_precision else (
        f'{s.precision}*')
    rate = r['fovs'] / r['wall']
    fovs = max(r['fovs'], 1)
    if r['objects_at_once'] == 1:
      outside = r['wall'] - r['model']
      split = (f'{1000 * r["model"] / fovs:12.1f} {1000 * outside / fovs:14.2f} '
               f'{100 * outside / r["wall"]:14.1f} '
               f'{100 * outside / max(r["model"], 1e-9):15.1f}')
    else:  # Model calls overlap in time: no share of the wall time is theirs alone.
      split = f'{"-":>12s} {"-":>14s} {"-":>14s} {"-":>15s}'
    print(f'{s.engine:10s} {precision:9s} {r["objects_at_once"]:7d} {r["fovs"]:6d} '
          f'{100 * r["redone"]:5.1f}% {r["objects"]:5d} {r["wall"]:7.1f} '
          f'{rate:7.2f} {rate / base_rate:7.2f} {split} '
          f'{_differing_voxels(r["seg"], first["seg"]):15d} {r["setup"]:8.1f}')
  for r in measured:
    if r['objects_at_once'] > 1:
      print(f'{r["objects_at_once"]} at once: model calls in flight {r["model"] / r["wall"]:.2f} '
            'on average; ' + ', '.join(f'{k} {r["pool"].get(k, 0)}' for k in _POOL_COUNTERS))
  if any(r['settings'].note for r in measured):
    print('* ' + '; '.join(sorted({r['settings'].note for r in measured if r['settings'].note})))
  print('"outside": wall time not spent in the model call (image, seeds, movement, '
        'executor, saving).')


if __name__ == '__main__':
  app.run(main)
