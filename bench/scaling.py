#!/usr/bin/env python
"""Blockwise inference throughput: workers x threads, and subvolumes grown at once per worker.

  python bench/scaling.py [--block 60] [--grid 2,2,1] [--config configs/inference_training_sample2_fast.pbtxt]
                          [--setups 1x0x1,0x1x1,0x1x1x1,1x0x2,1x0x4]

Segments the same `--grid` (x,y,z; 2 x 2 x 1) blocks of `--block`^3 of the bundled sample
(overlap a third of a block) once per setup `workers x threads x subvolumes`
(0 workers: one per usable CPU; 0 threads: the CPUs shared out evenly, as
run_blockwise_inference.py does by default), with a fourth `x0` or `x1` to
turn OpenVINO's pinning of threads to cores off or on (default: off for
engines given a share of the CPUs, OpenVINO's own otherwise), one after another in this
process, and prints for each: FOVs, FOVs/s while blocks were being grown
(from the first block's start to the last block's end, from each result's
own counters) and as a ratio to the first setup, the share of subvolume slots
(workers x subvolumes) idle in that time (one worker done while another still
grows its last block), the whole run's wall time
(worker start-up, model restore and stitching included), and the model
calls' FOVs as the engine saw them (workers growing several subvolumes log
them). The request's concurrent_objects is cleared so that every setup grows
one object at a time per subvolume; every setup's stitched result is
compared with the first's. Run it with nothing else running.
"""

from __future__ import annotations

import glob
import json
import os
import pathlib
import re
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import h5py
import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
from google.protobuf import text_format
from ffn.blockwise import grid as grid_lib
from ffn.blockwise import plan as plan_lib
from ffn.blockwise import scheduling
from ffn.blockwise import stitching
from ffn.blockwise import workers
from ffn.inference.engines import openvino_engine
from ffn.inference.io import results
from ffn.inference.request import run_request
from ffn.utils import bounding_box
from ffn.utils import hardware
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_integer('block', 60, 'Edge of each block (voxels).')
flags.DEFINE_list('grid', ['2', '2', '1'], 'Blocks along x,y,z (more blocks: less of the run is '
                  'a worker waiting for the last block of another).')
flags.DEFINE_string('config', str(REPO_ROOT / 'configs' / 'inference_training_sample2_fast.pbtxt'),
                    'InferenceRequest text file (its output directory is replaced).')
flags.DEFINE_list('setups', ['1x0x1', '0x1x1', '0x1x1x1', '1x0x2', '1x0x4'],
                  'workers x threads x subvolumes per worker [x pinning 0/1]; ratios are to '
                  'the first.')

_SAMPLE_SHAPE_ZYX = (250, 250, 250)
_BATCH_LINE = re.compile(re.escape(workers.BATCH_LOG) + r'.*calls by FOVs held: ([0-9: ,]*)\.')


def _plan(request_text: str, out: str) -> plan_lib.BlockwisePlan:
  """The --grid blocks of --block^3 at the sample's corner, stitched into out/stitched.h5."""
  block, overlap = FLAGS.block, FLAGS.block // 3
  counts = [int(n) for n in FLAGS.grid]
  region = bounding_box.BoundingBox(start=(0, 0, 0),
                                    size=[n * block - (n - 1) * overlap for n in counts])
  grid = grid_lib.BlockGrid.from_xyz(region, (block,) * 3,
                                     [overlap if n > 1 else 0 for n in counts])
  settings = stitching.StitchSettings(os.path.join(out, 'seg'), grid,
                                      f'{out}/stitched.h5:seg', 100, _SAMPLE_SHAPE_ZYX)
  return plan_lib.BlockwisePlan(settings, request_text)


def _request_text(out: str) -> str:
  request = run_request.parse_request(pathlib.Path(FLAGS.config).read_text())
  request.segmentation_output_dir = os.path.join(out, 'seg')
  request.checkpoint_interval = 0
  request.ClearField('concurrent_objects')
  return text_format.MessageToString(request)


def _growing_span(seg_dir: str) -> tuple[int, float, float]:
  """(FOVs, seconds from the first block's start to the last block's end, summed block seconds)."""
  fovs, starts, ends, total = 0, [], [], 0.0
  for path in glob.glob(os.path.join(seg_dir, '*', '*', 'seg-*.npz')):
    with results.open_npz(path) as data:
      counters = json.loads(str(data['counters']))
    fovs += int(counters.get('inference-calls', 0))
    busy = (int(counters.get('segment_all-time-ms', 0))
            + int(counters.get('load-image-time-ms', 0))) / 1000
    end = os.path.getmtime(path)
    starts.append(end - busy)
    ends.append(end)
    total += busy
  return fovs, max(ends) - min(starts), total


def _batches(work_dir: str) -> str:
  """The model calls by FOVs held, from the logs of workers growing several subvolumes."""
  found: dict[int, int] = {}
  for path in glob.glob(os.path.join(work_dir, 'logs', 'inference', '*.log')):
    for match in _BATCH_LINE.finditer(pathlib.Path(path).read_text()):
      for item in filter(None, match.group(1).split(', ')):
        size, calls = item.split(': ')
        found[int(size)] = found.get(int(size), 0) + int(calls)
  if not found:
    return 'all 1'
  return ' '.join(f'{n}:{c}' for n, c in sorted(found.items()))


def _run(setup: str, root: str) -> dict:
  workers_, threads, subvolumes, *pinning = (int(v) for v in setup.split('x'))
  workers_ = workers_ or hardware.usable_cpus()
  # Read by each worker's engine, which inherits this environment.
  os.environ.pop(openvino_engine.PINNING_ENV, None)
  if pinning:
    os.environ[openvino_engine.PINNING_ENV] = str(pinning[0])
  out = os.path.join(root, setup)
  plan = _plan(_request_text(out), out)
  start = time.perf_counter()
  scheduling.run(plan, num_workers=workers_, progress=False, threads_per_worker=threads,
                 subvolumes_per_worker=subvolumes)
  wall = time.perf_counter() - start
  fovs, span, busy = _growing_span(plan.stitch.segmentation_dir)
  with h5py.File(f'{out}/stitched.h5', 'r') as f:
    stitched = f['seg'][...]
  threads = threads or scheduling.worker_threads(0, workers_, None)
  pinned = {(): '', (0,): ' unpinned', (1,): ' pinned'}[tuple(pinning)]
  # The share of the run's subvolume slots (workers x subvolumes) that held no block,
  # e.g. a worker whose last block is done while another still grows one.
  idle = 1 - busy / (workers_ * subvolumes * span)
  return dict(name=f'{workers_} x {threads} x {subvolumes}{pinned}', fovs=fovs, span=span,
              wall=wall, idle=idle, batches=_batches(plan.work_dir), stitched=stitched)


def main(argv):
  del argv
  os.chdir(REPO_ROOT)
  with tempfile.TemporaryDirectory() as root:
    measured = [_run(setup, root) for setup in FLAGS.setups]
  first = measured[0]
  base = first['fovs'] / first['span']
  print(f'{" x ".join(FLAGS.grid)} blocks of {FLAGS.block}^3; {hardware.usable_cpus()} usable CPUs; CPU '
        f'offers {hardware.cpu_features().describe()}; {pathlib.Path(FLAGS.config).name} '
        'one object at a time')
  print(f'{"workers x threads x subvolumes":>39s} {"FOVs":>6s} {"growing s":>9s} '
        f'{"FOVs/s":>7s} {"x first":>7s} {"idle %":>6s} {"wall s":>7s} {"voxels != first":>15s}  '
        'model calls by FOVs held')
  for r in measured:
    rate = r['fovs'] / r['span']
    differing = int(np.sum(r['stitched'] != first['stitched']))
    print(f'{r["name"]:>39s} {r["fovs"]:6d} {r["span"]:9.1f} {rate:7.2f} {rate / base:7.2f} '
          f'{100 * r["idle"]:6.1f} {r["wall"]:7.1f} {differing:15d}  {r["batches"]}')


if __name__ == '__main__':
  app.run(main)
