"""SIGKILL run_inference.py at several moments, restart it, and get the uninterrupted result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from google.protobuf import text_format
import numpy as np

from ffn.inference import inference_pb2
from ffn.inference.io import results
from ffn.inference.request import runner as runner_lib

import synthetic_ffn

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHAPE = (14, 60, 120)
BOX = 'start { x: 0 y: 0 z: 0 } size { x: 120 y: 60 z: 14 }'


def _many_blobs():
  rng = np.random.RandomState(11)
  blobs = []
  for _ in range(70):
    size = rng.randint(4, 12, size=3) * np.array([1, 2, 2])
    start = [rng.randint(0, s - n) for s, n in zip(SHAPE, np.minimum(size, SHAPE))]
    blobs.append((tuple(start), tuple(np.asarray(start) + size)))
  return synthetic_ffn.blob_volume(SHAPE, blobs)


def _spawn(request_text):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=REPO_ROOT)
  return subprocess.Popen(
      [sys.executable, os.path.join(REPO_ROOT, 'run_inference.py'),
       f'--inference_request={request_text}', f'--bounding_box={BOX}'],
      cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_and_restart_gives_the_uninterrupted_result(tmp_path):
  image, _ = _many_blobs()
  spec = synthetic_ffn.write_h5(tmp_path / 'image.h5', image)
  ckpt = synthetic_ffn.write_tf_checkpoint(tmp_path)
  grid = dict(seed_policy='"PolicyGrid3d"',
              seed_policy_args=r'"{\"step\": 3, \"offsets\": [1, 2]}"')

  # The uninterrupted run, in this process.
  ref_dir = tmp_path / 'reference'
  runner = runner_lib.Runner()
  runner.start(text_format.Parse(
      synthetic_ffn.request_text(spec, ckpt, str(ref_dir), **grid),
      inference_pb2.InferenceRequest()))
  t0 = time.time()
  runner.run((0, 0, 0), SHAPE)
  ref_seconds = time.time() - t0
  runner.stop_executor()
  reference, ref_origins = results.load_segmentation(str(ref_dir), (0, 0, 0), split_cc=False)
  assert len(ref_origins) > 5

  out = tmp_path / 'killed'
  text = synthetic_ffn.request_text(spec, ckpt, str(out), checkpoint_interval=1, **grid)
  cpoint = results.checkpoint_path(str(out), (0, 0, 0))
  seg_path = results.segmentation_path(str(out), (0, 0, 0))
  rng = np.random.RandomState(0)
  kills = 0
  for attempt in range(6):
    proc = _spawn(text)
    # Wait for a checkpoint newer than the process start, then kill at a random moment.
    started = time.time()
    while proc.poll() is None and time.time() - started < 60:
      if os.path.exists(cpoint) and os.path.getmtime(cpoint) >= started:
        break
      time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.4))
    if proc.poll() is None:
      proc.send_signal(signal.SIGKILL)
      proc.wait()
      kills += 1
    else:
      assert proc.returncode == 0, proc.stderr.read().decode()
      break
    if kills >= 2:
      break
  assert kills >= 2, f'the run ({ref_seconds:.1f} s) finished before it was killed twice'
  assert not os.path.exists(seg_path) or kills < 3

  proc = _spawn(text)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err.decode()[-2000:]
  assert not os.path.exists(cpoint)
  result, origins = results.load_segmentation(str(out), (0, 0, 0), split_cc=False)
  np.testing.assert_array_equal(result, reference)
  assert {k: (tuple(v.start_zyx), v.iters) for k, v in origins.items()} == {
      k: (tuple(v.start_zyx), v.iters) for k, v in ref_origins.items()}
  with np.load(results.object_prob_path(str(out), (0, 0, 0))) as a, \
      np.load(results.object_prob_path(str(ref_dir), (0, 0, 0))) as b:
    np.testing.assert_array_equal(a['qprob'], b['qprob'])
  # Temporary files of interrupted writes are never left under a final name.
  leftovers = [n for n in os.listdir(os.path.dirname(seg_path)) if not n.startswith('.')]
  assert sorted(leftovers) == ['seg-0_0_0.npz', 'seg-0_0_0.prob']
