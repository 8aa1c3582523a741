"""Blockwise runs seeded from points: only the blocks that hold a point run."""

from __future__ import annotations

import json

import numpy as np
import tensorstore as ts

from ffn.blockwise import grid as grid_lib
from ffn.blockwise import scheduling
from ffn.scripts import run_blockwise_inference
from ffn.inference import inference_pb2

import blockwise_fixtures

# xyz: one point in the blob inside block (z0, y1, x1), one in the blob across the x border.
POINTS_XYZ = [[47, 32, 5], [31, 5, 5]]


def _done_blocks(plan, task: str, reach: int) -> set:
  """The grid positions the scheduler marked done for `task` (whose blocks read `reach` more)."""
  store = ts.open({'driver': 'zarr3',
                   'kvstore': f'file://{plan.work_dir}/done/{task}/done'}).result()
  # The markers span the task's total ROI, which starts `reach` blocks before the grid.
  return {tuple(int(i) - reach for i in index) for index in np.argwhere(store.read().result())}


def test_blocks_holding_points_on_a_non_cubic_grid():
  region = grid_lib.bounding_box.BoundingBox(start=(0, 0, 0), size=(64, 40, 24))
  grid = grid_lib.BlockGrid.from_xyz(region, (40, 26, 16), (16, 12, 8))
  assert grid.shape == (2, 2, 2)  # zyx
  # x 31 lies in both x blocks (0-40, 24-64); y 32 only in y block 1 (14-40); z 5 in z block 0.
  assert grid.blocks_holding(np.array([[5, 32, 31]])) == [(0, 1, 0), (0, 1, 1)]
  assert grid.blocks_holding(np.array([[20, 2, 2], [5, 32, 31]])) == [
      (0, 1, 0), (0, 1, 1), (1, 0, 0)]
  assert grid.blocks_holding(np.zeros((0, 3))) == []


def test_only_the_blocks_with_points_run(tmp_path):
  spec, labels = blockwise_fixtures.write_volume(tmp_path)
  grid = grid_lib.BlockGrid.from_xyz(blockwise_fixtures.region(),
                                     blockwise_fixtures.SUBVOLUME_XYZ,
                                     blockwise_fixtures.OVERLAP_XYZ)
  active = grid.blocks_holding(np.array(POINTS_XYZ)[:, ::-1])
  assert active == [(0, 0, 0), (0, 0, 1), (0, 1, 1)] and len(grid) == 8
  args = json.dumps(json.dumps({'points': POINTS_XYZ}))
  plan = blockwise_fixtures.make_plan(spec, tmp_path / 'out', f'{tmp_path}/points.h5:seg',
                                      active_blocks=active, seed_policy='"PolicyPoints"',
                                      seed_policy_args=args)
  scheduling.run(plan, num_workers=1, progress=False)
  for task, reach in (('inference', 0), ('match', 1), ('write', 1)):
    assert _done_blocks(plan, task, reach) == set(active)
  assert len(list((tmp_path / 'out').rglob('seg-*.npz'))) == 3
  stitched = blockwise_fixtures.read_h5(f'{tmp_path}/points.h5:seg')
  # Two objects: the blob inside one block, and the blob across the x border as one id.
  ids = [np.unique(stitched[labels == blob]) for blob in (5, 1)]
  assert all(len(i) == 1 and i[0] > 0 for i in ids) and ids[0] != ids[1]
  assert set(np.unique(stitched)) == {0, int(ids[0][0]), int(ids[1][0])}


def test_the_script_reads_the_points_of_the_request():
  request = inference_pb2.InferenceRequest(
      seed_policy='PolicyPoints', seed_policy_args=json.dumps({'points': POINTS_XYZ}))
  np.testing.assert_array_equal(run_blockwise_inference._points_zyx(request),
                                [[5, 32, 47], [5, 5, 31]])
  assert run_blockwise_inference._points_zyx(
      inference_pb2.InferenceRequest(seed_policy='PolicyPeaks')) is None
