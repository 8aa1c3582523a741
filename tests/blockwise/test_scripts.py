"""stitch_segmentation.py and run_blockwise_inference.py from the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ffn.blockwise import grid as grid_lib
from ffn.inference.io import results

import blockwise_fixtures
import synthetic_ffn

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOX = 'start { x: 0 y: 0 z: 0 } size { x: 64 y: 40 z: 24 }'
GRID_FLAGS = ['--subvolume_size=40,26,16', '--overlap=16,12,8', f'--bounding_box={BOX}']


def _run(script, *args):
  env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL='3')
  return subprocess.run([sys.executable, os.path.join(REPO_ROOT, script), *args], cwd=REPO_ROOT,
                        env=env, capture_output=True, text=True, timeout=300)


def _save_results(directory):
  """Each subvolume's crop of the groundtruth as its result; returns the groundtruth."""
  _, labels = synthetic_ffn.blob_volume(blockwise_fixtures.SHAPE_ZYX, blockwise_fixtures.blobs())
  grid = grid_lib.BlockGrid.from_xyz(blockwise_fixtures.region(), blockwise_fixtures.SUBVOLUME_XYZ,
                                     blockwise_fixtures.OVERLAP_XYZ)
  for index in grid.indices():
    results.save_subvolume(labels[grid.box(index).to_slice()], {},
                           results.segmentation_path(directory, grid.corner(index)))
  return labels, grid


def test_stitch_segmentation_with_a_worker_command(tmp_path):
  labels, _ = _save_results(str(tmp_path / 'seg'))
  output = f'{tmp_path}/stitched.h5:seg'
  result = _run('stitch_segmentation.py', f'--segmentation_dir={tmp_path}/seg',
                f'--output_volume={output}', '--min_overlap_size=20',
                '--worker_command=env FFN_TEST_LAUNCHED=1 {command}', *GRID_FLAGS)
  assert result.returncode == 0, result.stderr[-3000:]
  stitched = blockwise_fixtures.read_h5(output)
  pairs = set(zip(labels.ravel().tolist(), stitched.ravel().tolist()))
  assert len(pairs) == 7 and (0, 0) in pairs and len({b for _, b in pairs}) == 7


def test_stitch_segmentation_records_the_voxel_size(tmp_path):
  from ffn.utils import volumes  # pylint: disable=g-import-not-at-top
  labels, _ = _save_results(str(tmp_path / 'seg'))
  output = f'zarr3://{tmp_path}/stitched.zarr'
  result = _run('stitch_segmentation.py', f'--segmentation_dir={tmp_path}/seg',
                f'--output_volume={output}', '--min_overlap_size=20', '--voxel_size=10,10,10',
                '--worker_command=env FFN_TEST_LAUNCHED=1 {command}', *GRID_FLAGS)
  assert result.returncode == 0, result.stderr[-3000:]
  volume = volumes.open_volume(output)
  assert volume.voxel_size_xyz() == (10.0, 10.0, 10.0)
  assert volume.shape == labels.shape


@pytest.mark.parametrize('args, message', [
    (['--overlap=0,12,8'], '--overlap is 0 along x'),
    (['--overlap=40,12,8'], 'smaller than --subvolume_size'),
    (['--worker_command=srun'], "no {command} placeholder"),
    (['--min_overlap_fraction=1.5'], '--min_overlap_fraction=1.5: expected a finite number in (0, 1]'),
    (['--output_volume=out.h5'], 'has no dataset'),
    (['--voxel_size=10,0,10'], '--voxel_size'),
    (['--bounding_box=start { x: 0 }'], 'has no size'),
])
def test_bad_flags_fail_in_one_line(tmp_path, args, message):
  _save_results(str(tmp_path / 'seg'))
  flags = {a.split('=', 1)[0]: a for a in [*GRID_FLAGS, f'--segmentation_dir={tmp_path}/seg',
                                             f'--output_volume={tmp_path}/o.h5:seg', *args]}
  result = _run('stitch_segmentation.py', *flags.values())
  assert result.returncode == 1
  assert message in result.stderr and 'Traceback' not in result.stderr, result.stderr
  assert not os.path.exists(tmp_path / 'o.h5')


def test_missing_results_are_named(tmp_path):
  _, grid = _save_results(str(tmp_path / 'seg'))
  os.remove(results.segmentation_path(str(tmp_path / 'seg'), grid.corner((1, 0, 1))))
  result = _run('stitch_segmentation.py', f'--segmentation_dir={tmp_path}/seg',
                f'--output_volume={tmp_path}/o.h5:seg', *GRID_FLAGS)
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert 'seg-24_0_8 (xyz start 24,0,8 size 40,26,16)' in result.stderr


def test_run_blockwise_inference_checks_the_region_first(tmp_path):
  spec, _ = blockwise_fixtures.write_volume(tmp_path)
  request = blockwise_fixtures.request_text(spec, tmp_path / 'seg')
  result = _run('run_blockwise_inference.py', f'--inference_request={request}',
                f'--output_volume={tmp_path}/o.h5:seg', '--subvolume_size=40,26,16',
                '--overlap=16,12,8',
                '--bounding_box=start { x: 0 y: 0 z: 0 } size { x: 64 y: 40 z: 30 }')
  assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr
  assert 'beyond the image volume of size (64, 40, 24)' in result.stderr
  assert not os.path.exists(tmp_path / 'seg')


def test_stitch_segmentation_of_a_points_run_stitches_only_the_blocks_with_points(tmp_path):
  labels, grid = _save_results(str(tmp_path / 'seg'))
  # Results exist only for the blocks holding a point, as a PolicyPoints run leaves them.
  point_xyz = (47, 32, 5)  # In the blob inside one block (zyx 3:8, 30:36, 45:51).
  kept = {index for index in grid.indices()
          if all(c <= p < c + n for c, n, p in zip(grid.corner(index), grid.block_size(index),
                                                    point_xyz[::-1]))}
  for index in set(grid.indices()) - kept:
    os.remove(results.segmentation_path(str(tmp_path / 'seg'), grid.corner(index)))
  (tmp_path / 'points.txt').write_text('47,32,5\n')
  args = [f'--segmentation_dir={tmp_path}/seg', '--min_overlap_size=20', *GRID_FLAGS]
  missing = _run('stitch_segmentation.py', *args, f'--output_volume={tmp_path}/all.h5:seg')
  assert missing.returncode == 1 and 'missing' in missing.stderr
  output = f'{tmp_path}/points.h5:seg'
  result = _run('stitch_segmentation.py', *args, f'--output_volume={output}',
                f'--points_file={tmp_path}/points.txt')
  assert result.returncode == 0, result.stderr[-3000:]
  stitched = blockwise_fixtures.read_h5(output)
  # The point's object is there; another block's object (zyx 16:21, 28:34, 4:10) is not.
  assert labels[5, 32, 47] != 0 and stitched[5, 32, 47] != 0
  assert labels[18, 30, 6] != 0 and stitched[18, 30, 6] == 0
