"""Blockwise inference on daisy with worker processes: against a single run, kills and failures."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

from google.protobuf import text_format
import numpy as np
import pytest

from ffn.blockwise import scheduling
from ffn.inference import inference_pb2
from ffn.inference.io import results
from ffn.inference.request import runner as runner_lib

import blockwise_fixtures
import synthetic_ffn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))


@pytest.fixture(scope='module')
def volume(tmp_path_factory):
  """(directory, image spec, groundtruth) of the synthetic volume."""
  root = tmp_path_factory.mktemp('blockwise')
  spec, labels = blockwise_fixtures.write_volume(root)
  return root, spec, labels


@pytest.fixture(scope='module')
def single_run(volume):
  """The whole volume segmented as one subvolume."""
  root, spec, _ = volume
  out = root / 'single'
  runner = runner_lib.Runner()
  runner.prepare(text_format.Parse(blockwise_fixtures.request_text(spec, out),
                                   inference_pb2.InferenceRequest()))
  runner.load_model(synthetic_ffn.NumpyModel())
  try:
    runner.run((0, 0, 0), blockwise_fixtures.SHAPE_ZYX)
  finally:
    runner.stop_executor()
  return results.load_segmentation(str(out), (0, 0, 0), split_cc=False)[0]


@pytest.fixture(scope='module')
def one_worker(volume):
  """The stitched result of an uninterrupted blockwise run with one worker."""
  root, spec, _ = volume
  plan = blockwise_fixtures.make_plan(spec, root / 'one', f'{root}/one.h5:seg')
  scheduling.run(plan, num_workers=1, progress=False)
  return blockwise_fixtures.read_h5(f'{root}/one.h5:seg')


def _relabelling(a: np.ndarray, b: np.ndarray) -> dict:
  """The id map a -> b if `b` is `a` relabelled one to one (0 to 0), else an AssertionError."""
  pairs = set(zip(a.ravel().tolist(), b.ravel().tolist()))
  forward = dict(pairs)
  assert len(forward) == len(pairs) == len(set(forward.values())), 'not one to one'
  assert forward.get(0, 0) == 0
  return forward


def test_blockwise_equals_a_single_run_up_to_relabelling(one_worker, single_run, volume):
  _, _, labels = volume
  assert len(_relabelling(single_run, one_worker)) == 7
  # Every object, including those across borders and the corner of all eight blocks, is one id.
  for blob in range(1, 7):
    assert len(np.unique(one_worker[labels == blob])) == 1


def test_two_workers_give_the_same_result(one_worker, volume):
  root, spec, _ = volume
  plan = blockwise_fixtures.make_plan(spec, root / 'two', f'{root}/two.h5:seg')
  scheduling.run(plan, num_workers=2, progress=False)
  np.testing.assert_array_equal(blockwise_fixtures.read_h5(f'{root}/two.h5:seg'), one_worker)
  # A second run finds everything done and changes nothing.
  mtime = os.path.getmtime(f'{root}/two.h5')
  scheduling.run(plan, num_workers=2, progress=False)
  assert os.path.getmtime(f'{root}/two.h5') == mtime


_DRIVER = '''
import sys
sys.path[:0] = {paths!r}
import blockwise_fixtures
from ffn.blockwise import scheduling
plan = blockwise_fixtures.make_plan({spec!r}, {out!r}, {output!r}, checkpoint_interval=1,
                                    model_factory='blockwise_fixtures.SlowModel')
scheduling.run(plan, num_workers=2, progress=False)
'''


def _worker_pids(parent: int) -> list[int]:
  """The daisy worker processes started by `parent`."""
  pids = []
  for entry in os.listdir('/proc'):
    try:
      with open(f'/proc/{entry}/stat') as f:
        ppid = int(f.read().rsplit(')', 1)[1].split()[1])
      with open(f'/proc/{entry}/cmdline', 'rb') as f:
        command = f.read()
    except (OSError, ValueError, IndexError):
      continue
    if ppid == parent and b'daisy._subprocess_worker' in command:
      pids.append(int(entry))
  return pids


def _wait_for_results(proc, out, count: int, checkpoints: int = 0) -> None:
  """Waits until `count` subvolume results (and `checkpoints` checkpoints) exist, mid-run."""
  deadline = time.time() + 60
  while proc.poll() is None and time.time() < deadline:
    if (len(glob.glob(str(out / '*' / '*' / 'seg-*.npz'))) >= count
        and len(glob.glob(str(out / '*' / '*' / '*.cpoint'))) >= checkpoints):
      return
    time.sleep(0.05)
  assert proc.poll() is None, proc.stderr.read().decode()[-2000:]


def test_kill_and_rerun_gives_the_uninterrupted_result(one_worker, volume):
  root, spec, _ = volume
  out, output = root / 'killed', f'{root}/killed.h5:seg'
  script = _DRIVER.format(paths=[HERE, os.path.join(REPO_ROOT, 'tests', 'inference'), REPO_ROOT],
                          spec=spec, out=str(out), output=output)
  proc = subprocess.Popen([sys.executable, '-c', script], cwd=REPO_ROOT, start_new_session=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  # Kill one worker (daisy starts another and hands its block out again), then, once a
  # few subvolumes are done, the scheduler and all its workers.
  _wait_for_results(proc, out, 1)
  workers = _worker_pids(proc.pid)
  assert workers
  os.kill(workers[0], signal.SIGKILL)
  _wait_for_results(proc, out, 3, checkpoints=1)
  os.killpg(proc.pid, signal.SIGKILL)
  proc.wait()
  done_before = {p: os.path.getmtime(p) for p in glob.glob(str(out / '*' / '*' / 'seg-*.npz'))}
  in_flight = glob.glob(str(out / '*' / '*' / '*.cpoint'))
  assert in_flight
  assert 3 <= len(done_before) < 8
  assert not os.path.exists(f'{root}/killed.h5')  # Nothing under the output's name.

  plan = blockwise_fixtures.make_plan(spec, out, output, checkpoint_interval=1,
                                      model_factory='blockwise_fixtures.SlowModel')
  scheduling.run(plan, num_workers=2, progress=False)
  np.testing.assert_array_equal(blockwise_fixtures.read_h5(output), one_worker)
  # Done subvolumes were not run again; no checkpoint is left behind.
  assert all(os.path.getmtime(p) == t for p, t in done_before.items())
  assert not glob.glob(str(out / '*' / '*' / '*.cpoint'))
  # The subvolumes in flight continued from their checkpoints.
  logs = ''.join(open(p).read() for p in glob.glob(
      os.path.join(plan.work_dir, 'logs', 'inference', '*.err')))
  for cpoint in in_flight:
    assert f'Inference checkpoint restored from {cpoint}' in logs


def test_a_failing_block_is_retried_and_reported_by_name(volume):
  root, _, _ = volume
  image, _ = synthetic_ffn.blob_volume(blockwise_fixtures.SHAPE_ZYX, blockwise_fixtures.blobs())
  image[18, 30, 6] = blockwise_fixtures.POISON  # Inside the sixth object: only one block sees it.
  spec = synthetic_ffn.write_h5(root / 'poisoned.h5', image)
  plan = blockwise_fixtures.make_plan(spec, root / 'failing', f'{root}/failing.h5:seg',
                                      model_factory='blockwise_fixtures.FailingModel')
  with pytest.raises(scheduling.BlockwiseError) as error:
    scheduling.run(plan, num_workers=2, progress=False)
  message = str(error.value)
  assert 'inference seg-0_14_8 (xyz start 0,14,8 size 40,26,16)' in message
  assert 'RuntimeError: poisoned voxels in the field of view (2 attempts)' in message
  # The other subvolumes finished; nothing was stitched.
  assert len(glob.glob(str(root / 'failing' / '*' / '*' / 'seg-*.npz'))) == 7
  assert not os.path.exists(f'{root}/failing.h5')
