"""Hostile inputs and faults for the scripts that do not need TensorFlow (each a subprocess).

Every case must fail cleanly (see bad_inputs_lib): one error line naming the
bad value, non-zero exit, no traceback, nothing half-written, other data
untouched. Data files must never run code. The TensorFlow scripts (train.py,
run_inference.py) are in test_bad_inputs_tf.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
from PIL import Image
import pytest

from bad_inputs_lib import REPO_ROOT, digest, expect_clean_failure, fill, leftovers
from bad_inputs_lib import record_success, run_script, tmpfs

SHAPE = (12, 20, 24)  # zyx, non-cubic
CORNER = (0, 0, 0)
SEG_NPZ = os.path.join('0', '0', 'seg-0_0_0.npz')


class _RunsCommand:
  """Unpickling this would run `touch marker`."""

  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return os.system, (f'touch {self.marker}',)


def _labels() -> np.ndarray:
  labels = np.zeros(SHAPE, np.uint32)
  labels[:, :10, :] = 1
  labels[:, 10:, :12] = 2
  labels[:, 10:, 12:] = 3
  return labels


@pytest.fixture
def volumes(tmp_path):
  """gt.h5:stack (labels) and image.h5:raw, plus a finished result directory `seg`."""
  with h5py.File(tmp_path / 'gt.h5', 'w') as f:
    f.create_dataset('stack', data=_labels())
  image = np.random.default_rng(0).integers(0, 255, SHAPE).astype(np.uint8)
  with h5py.File(tmp_path / 'image.h5', 'w') as f:
    f.create_dataset('raw', data=image)
  from ffn.inference.io import results  # No TensorFlow behind storage.
  results.save_subvolume(_labels(), {}, str(tmp_path / 'seg' / SEG_NPZ))
  return tmp_path


def _malicious_result(directory, marker):
  path = directory / SEG_NPZ
  path.parent.mkdir(parents=True)
  np.savez(path, segmentation=_labels(), origins=np.array(_RunsCommand(marker), dtype=object))
  return path


def _corrupt_result(directory):
  path = directory / SEG_NPZ
  path.parent.mkdir(parents=True)
  path.write_bytes(b'PK\x03\x04 this is not a zip archive')
  return path


# ----------------------------------------------------------------------------
# Code in data files.


@pytest.mark.parametrize('script', ['evaluate_segmentation.py', 'export_segmentation.py',
                                    'view_segmentation.py'])
def test_malicious_npz_runs_nothing(volumes, script):
  marker = volumes / 'marker'
  _malicious_result(volumes / 'evil', marker)
  common = ['--segmentation_dir', str(volumes / 'evil')]
  out = volumes / 'out.h5'
  extra = {'evaluate_segmentation.py': ['--groundtruth', f'{volumes}/gt.h5:stack',
                                        '--output_json', str(out)],
           'export_segmentation.py': ['--output', str(out)],
           'view_segmentation.py': ['--timeout_secs', '1']}[script]
  proc = run_script(script, *common, *extra)
  expect_clean_failure(f'{script} malicious npz', proc, ['seg-0_0_0.npz', 'not allowed'],
                       outputs=[out], klass='code in data')
  assert not marker.exists(), 'a pickle in the npz ran a command'


def test_malicious_mask_expression_runs_nothing(volumes):
  marker = volumes / 'escaped'
  escape = ('[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '
            '\\"catch_warnings\\"][0]()._module.__builtins__[\\"__import__\\"](\\"os\\")'
            f'.system(\\"touch {marker}\\")')
  out = volumes / 'af.h5'
  proc = run_script('compute_partitions.py', '--input_volume', f'{volumes}/gt.h5:stack',
                    '--output_volume', f'{out}:af', '--thresholds', '0.5',
                    '--lom_radius', '2,2,2', '--min_size', '0',
                    '--mask_configs', f'masks {{ coordinate_expression {{ expression: "{escape}" }} }}')
  expect_clean_failure('compute_partitions mask escape', proc, ['__class__'], outputs=[out],
                       klass='code in data')
  assert not marker.exists()


# ----------------------------------------------------------------------------
# Corrupt and wrong inputs.


@pytest.mark.parametrize('script', ['evaluate_segmentation.py', 'export_segmentation.py',
                                    'view_segmentation.py'])
def test_corrupt_npz(volumes, script):
  path = _corrupt_result(volumes / 'bad')
  out = volumes / 'out.h5'
  extra = {'evaluate_segmentation.py': ['--groundtruth', f'{volumes}/gt.h5:stack',
                                        '--output_json', str(out)],
           'export_segmentation.py': ['--output', str(out)],
           'view_segmentation.py': ['--timeout_secs', '1']}[script]
  proc = run_script(script, '--segmentation_dir', str(volumes / 'bad'), *extra)
  expect_clean_failure(f'{script} corrupt npz', proc, [str(path)], outputs=[out],
                       untouched={path: digest(path)}, klass='files')


def test_npz_to_png_corrupt_npz_and_file_as_output(volumes):
  bad = _corrupt_result(volumes / 'bad')
  out_dir = volumes / 'png'
  proc = run_script('-m ffn.scripts.npz_to_png', str(bad), '--output_dir', str(out_dir))
  expect_clean_failure('npz_to_png corrupt npz', proc, [str(bad)], outputs=[out_dir], klass='files')
  a_file = volumes / 'a_file'
  a_file.write_text('keep me')
  proc = run_script('-m ffn.scripts.npz_to_png', str(volumes / 'seg' / SEG_NPZ),
                    '--output_dir', str(a_file))
  expect_clean_failure('npz_to_png output is a file', proc, [str(a_file)],
                       untouched={a_file: digest(a_file)}, klass='outputs')


def test_png_to_h5_corrupt_png_and_file_as_output(volumes):
  pngs = volumes / 'pngs'
  pngs.mkdir()
  Image.fromarray(np.zeros((8, 9), np.uint8)).save(pngs / 'a_000.png')
  (pngs / 'a_001.png').write_bytes(b'\x89PNG\r\n\x1a\n but then nothing valid')
  out = volumes / 'stack.h5'
  proc = run_script('-m ffn.scripts.png_to_h5', '--input_dir', str(pngs), str(out))
  expect_clean_failure('png_to_h5 corrupt png', proc, ['a_001.png'], outputs=[out], klass='files')
  a_file = volumes / 'a_file'
  a_file.write_text('keep me')
  (pngs / 'a_001.png').unlink()
  proc = run_script('-m ffn.scripts.png_to_h5', '--input_dir', str(pngs),
                    str(a_file / 'stack.h5'))
  expect_clean_failure('png_to_h5 output under a file', proc, [str(a_file)],
                       untouched={a_file: digest(a_file)}, klass='outputs')


def test_evaluate_missing_image_fails_before_evaluating(volumes):
  out = volumes / 'report.json'
  proc = run_script('evaluate_segmentation.py', '--segmentation_dir', str(volumes / 'seg'),
                    '--groundtruth', f'{volumes}/gt.h5:stack', '--output_json', str(out),
                    '--overview_png', str(volumes / 'o.png'),
                    '--image', f'{volumes}/no_such_image.h5:raw')
  text = expect_clean_failure('evaluate missing --image', proc, ['no_such_image.h5'],
                              outputs=[out, volumes / 'o.png'], klass='files')
  assert 'variation of information' not in text.lower()


def test_centres_outside_volume_for_view(volumes):
  proc = run_script('view_segmentation.py', '--segmentation_dir', str(volumes / 'seg'),
                    '--corner', '5,0,0', '--timeout_secs', '1')
  expect_clean_failure('view missing corner', proc, ['(0, 0, 5)'], klass='boxes')


def test_viewer_busy_port(volumes):
  with __import__('socket').socket() as busy:
    busy.bind(('127.0.0.1', 0))
    busy.listen()
    port = busy.getsockname()[1]
    proc = run_script('view_segmentation.py', '--groundtruth', f'{volumes}/gt.h5:stack',
                      '--port', str(port), '--timeout_secs', '1')
  expect_clean_failure('viewer busy port', proc, [f'127.0.0.1:{port}'], klass='ports')
  proc = run_script('view_segmentation.py', '--groundtruth', f'{volumes}/gt.h5:stack',
                    '--bind_address', '10.255.255.1', '--timeout_secs', '1')
  expect_clean_failure('viewer bind failure', proc, ['10.255.255.1'], klass='ports')


# ----------------------------------------------------------------------------
# Outputs: shared files, links, things that are not files.


def test_compute_partitions_keeps_other_datasets(volumes):
  shared = volumes / 'shared.h5'
  with h5py.File(shared, 'w') as f:
    f.create_dataset('stack', data=_labels())
    f.create_dataset('other', data=np.arange(5))
  for _ in range(2):  # The second run replaces its own dataset only.
    proc = run_script('compute_partitions.py', '--input_volume', f'{shared}:stack',
                      '--output_volume', f'{shared}:af', '--thresholds', '0.5',
                      '--lom_radius', '2,2,2', '--min_size', '0')
    assert proc.returncode == 0, proc.stderr[-2000:]
  with h5py.File(shared, 'r') as f:
    assert sorted(f) == ['af', 'other', 'stack']
    np.testing.assert_array_equal(f['stack'][...], _labels())
    np.testing.assert_array_equal(f['other'][...], np.arange(5))
    assert f['af'].shape == SHAPE
  assert not leftovers([shared])[1:]
  record_success('compute_partitions into a shared HDF5 file')


def test_output_symlink_written_through(volumes):
  target = volumes / 'real' / 'af.h5'
  target.parent.mkdir()
  link = volumes / 'link.h5'
  link.symlink_to(target)
  proc = run_script('compute_partitions.py', '--input_volume', f'{volumes}/gt.h5:stack',
                    '--output_volume', f'{link}:af', '--thresholds', '0.5',
                    '--lom_radius', '2,2,2', '--min_size', '0')
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert link.is_symlink() and target.is_file()
  with h5py.File(link, 'r') as f:
    assert f['af'].shape == SHAPE
  record_success('output through a symlink')


@pytest.mark.parametrize('kind', ['fifo', 'directory', 'not_hdf5'])
def test_output_that_must_not_be_replaced(volumes, kind):
  out = volumes / 'out.h5'
  if kind == 'fifo':
    os.mkfifo(out)  # Stands for a device such as /dev/full, without touching /dev.
  elif kind == 'directory':
    out.mkdir()
    (out / 'inside').write_text('keep')
  else:
    out.write_text('precious notes')
  before = None if kind == 'fifo' else digest(out)
  proc = run_script('compute_partitions.py', '--input_volume', f'{volumes}/gt.h5:stack',
                    '--output_volume', f'{out}:af', '--thresholds', '0.5',
                    '--lom_radius', '2,2,2', '--min_size', '0')
  expect_clean_failure(f'compute_partitions output is a {kind}', proc, [str(out)],
                       untouched={} if before is None else {out: before}, klass='outputs')
  if kind == 'fifo':
    assert os.path.exists(out) and not out.is_file()


def test_export_output_under_a_file(volumes):
  a_file = volumes / 'a_file'
  a_file.write_text('keep me')
  proc = run_script('export_segmentation.py', '--segmentation_dir', str(volumes / 'seg'),
                    '--output', str(a_file / 'x.zarr'))
  expect_clean_failure('export output under a file', proc, [str(a_file)],
                       untouched={a_file: digest(a_file)}, klass='outputs')


# ----------------------------------------------------------------------------
# Read-only and full file systems.


def _prepare_commands(volumes, out_dir):
  """(case, script args, output) for every writer, all writing under out_dir."""
  pngs = volumes / 'pngs'
  pngs.mkdir(exist_ok=True)
  Image.fromarray(np.full((64, 64), 7, np.uint8)).save(pngs / 'a.png')
  seg = str(volumes / 'seg')
  return [
      ('compute_partitions', ['compute_partitions.py', '--input_volume',
                              f'{volumes}/gt.h5:stack', '--output_volume',
                              f'{out_dir}/af.h5:af', '--thresholds', '0.5', '--lom_radius',
                              '2,2,2', '--min_size', '0'], out_dir / 'af.h5'),
      ('export zarr', ['export_segmentation.py', '--segmentation_dir', seg, '--output',
                       f'{out_dir}/ex.zarr'], out_dir / 'ex.zarr'),
      ('export hdf5', ['export_segmentation.py', '--segmentation_dir', seg, '--output',
                       f'{out_dir}/ex.h5'], out_dir / 'ex.h5'),
      ('evaluate overview', ['evaluate_segmentation.py', '--segmentation_dir', seg,
                             '--groundtruth', f'{volumes}/gt.h5:stack', '--overview_png',
                             f'{out_dir}/o.png'], out_dir / 'o.png'),
      ('png_to_h5', ['-m', 'ffn.scripts.png_to_h5', '--input_dir', str(pngs),
                     f'{out_dir}/s.h5'], out_dir / 's.h5'),
      ('npz_to_png', ['-m', 'ffn.scripts.npz_to_png', f'{seg}/{SEG_NPZ}', '--output_dir',
                      f'{out_dir}/png'], out_dir / 'png' / 'slice_0000.png'),
  ]


def _run_args(args):
  if args[0] == '-m':
    return run_script(f'-m {args[1]}', *args[2:])
  return run_script(*args)


def test_read_only_output_directory(volumes):
  with tmpfs(volumes / 'ro', read_only=True) as ro:
    for case, args, out in _prepare_commands(volumes, ro):
      proc = _run_args(args)
      expect_clean_failure(f'{case} read-only dir', proc, [str(ro)], outputs=[out],
                           klass='file systems')


def test_disk_full(volumes):
  with tmpfs(volumes / 'full', size='64k') as full:
    fill(full)
    for case, args, out in _prepare_commands(volumes, full):
      proc = _run_args(args)
      text = expect_clean_failure(f'{case} disk full', proc, [], outputs=[out],
                                  klass='file systems')
      assert 'space' in text.lower() or 'errno = 28' in text, text[-1500:]
      assert proc.returncode == 1, f'{case}: exit {proc.returncode}'
      assert os.listdir(full) == ['filler'], os.listdir(full)


def test_build_coordinates_read_only_and_full(volumes):
  af = volumes / 'af.h5'
  proc = run_script('compute_partitions.py', '--input_volume', f'{volumes}/gt.h5:stack',
                    '--output_volume', f'{af}:af', '--thresholds', '0.5',
                    '--lom_radius', '2,2,2', '--min_size', '0')
  assert proc.returncode == 0, proc.stderr[-2000:]
  with tmpfs(volumes / 'ro', read_only=True) as ro:
    proc = run_script('build_coordinates.py', '--partition_volumes', f'v:{af}:af',
                      '--coordinate_output', f'{ro}/c.rec', '--margin', '2,2,2')
    expect_clean_failure('build_coordinates read-only dir', proc, [str(ro)],
                         outputs=[ro / 'c.rec'], klass='file systems')
  with tmpfs(volumes / 'full', size='64k') as full:
    fill(full)
    proc = run_script('build_coordinates.py', '--partition_volumes', f'v:{af}:af',
                      '--coordinate_output', f'{full}/c.rec', '--margin', '2,2,2')
    expect_clean_failure('build_coordinates disk full', proc, ['space'],
                         outputs=[full / 'c.rec'], klass='file systems')
    assert os.listdir(full) == ['filler']


# ----------------------------------------------------------------------------
# Killed runs: nothing at the output, and the rerun leaves no temporaries.


def _kill_when_temporary_appears(args, out, timeout=120):
  """Starts a script, SIGKILLs it once its temporary output exists; returns whether it did."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', PYTHONPATH=str(REPO_ROOT))
  proc = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.monotonic() + timeout
  try:
    while proc.poll() is None and time.monotonic() < deadline:
      if leftovers([out])[0:] and not os.path.exists(out):
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True
      time.sleep(0.002)
    return False
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()


@pytest.fixture
def big_labels(tmp_path):
  """A label volume large enough that writing its outputs takes a moment."""
  rng = np.random.default_rng(1)
  labels = rng.integers(1, 40, (60, 160, 200)).astype(np.uint32)
  with h5py.File(tmp_path / 'big.h5', 'w') as f:
    f.create_dataset('stack', data=labels, chunks=True)
  return tmp_path


@pytest.mark.parametrize('tool', ['compute_partitions', 'build_coordinates', 'export'])
def test_killed_writer_leaves_nothing_and_rerun_cleans_up(big_labels, tool):
  d = big_labels
  if tool != 'compute_partitions':
    proc = run_script('compute_partitions.py', '--input_volume', f'{d}/big.h5:stack',
                      '--output_volume', f'{d}/af.h5:af', '--thresholds', '0.5',
                      '--lom_radius', '1,1,1', '--min_size', '0')
    assert proc.returncode == 0, proc.stderr[-2000:]
  args, out = {
      'compute_partitions': (['compute_partitions.py', '--input_volume', f'{d}/big.h5:stack',
                              '--output_volume', f'{d}/out.h5:af', '--thresholds', '0.5',
                              '--lom_radius', '1,1,1', '--min_size', '0'], d / 'out.h5'),
      'build_coordinates': (['build_coordinates.py', '--partition_volumes', f'v:{d}/af.h5:af',
                             '--coordinate_output', f'{d}/c.rec', '--margin', '1,1,1'],
                            d / 'c.rec'),
      'export': (['export_segmentation.py', '--segmentation', f'{d}/big.h5:stack',
                  '--output', f'{d}/ex.zarr'], d / 'ex.zarr'),
  }[tool]
  killed = _kill_when_temporary_appears(args, out)
  if not killed:
    pytest.skip(f'{tool} finished before its temporary output could be seen')
  assert not os.path.exists(out)
  assert leftovers([out]), 'the killed run should have left its temporary'
  proc = run_script(*args)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert os.path.exists(out)
  assert leftovers([out]) == [str(out)], leftovers([out])
  record_success(f'{tool} rerun after SIGKILL')
