"""Tests for ffn.analysis.skeletons: ERL on hand-built skeletons, SWC files, kimimaro skeletons."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from ffn.analysis import skeletons as sk


def _chain(object_id: int, num_nodes: int, step: float = 10.0, start=(0.0, 0.0, 0.0),
           axis: int = 0) -> sk.Skeletons:
  """A straight skeleton of `num_nodes` nodes `step` apart along one axis (xyz)."""
  positions = np.tile(np.asarray(start, dtype=float), (num_nodes, 1))
  positions[:, axis] += step * np.arange(num_nodes)
  edges = np.stack([np.arange(num_nodes - 1), np.arange(1, num_nodes)], axis=1)
  return sk.Skeletons(positions, edges, np.full(num_nodes, object_id))


def _score(parts, segments_per_part):
  skeletons = sk.Skeletons.concatenate(parts)
  return sk.run_length_metrics(skeletons, np.concatenate(segments_per_part))


# ----------------------------------------------------------------------------
# ERL on toy skeletons, computed by hand.


def test_one_perfect_segment():
  metrics = _score([_chain(1, 5)], [[7, 7, 7, 7, 7]])  # Length 40, one run of 40.
  assert metrics.erl == pytest.approx(40.0)
  assert metrics.max_erl == pytest.approx(40.0)
  assert metrics.total_length == pytest.approx(40.0)
  assert (metrics.merges, metrics.splits, metrics.num_runs, metrics.num_skeletons) == (0, 0, 1, 1)


def test_edge_lengths_are_euclidean():
  # Edges of length 5 (3-4-5) and 13 (5-12-13): one run of 18.
  skeletons = sk.Skeletons([[0, 0, 0], [3, 4, 0], [3, 9, 12]], [[0, 1], [1, 2]], [4, 4, 4])
  metrics = sk.run_length_metrics(skeletons, [2, 2, 2])
  assert metrics.total_length == pytest.approx(18.0)
  assert metrics.erl == pytest.approx(18.0)


def test_split_in_the_middle():
  # 0-10-20 in segment 7, 30-40 in segment 8: runs of 20 and 10 on a skeleton of 40.
  metrics = _score([_chain(1, 5)], [[7, 7, 7, 8, 8]])
  assert metrics.erl == pytest.approx((20 ** 2 + 10 ** 2) / 40)  # 12.5
  assert metrics.splits == 1 and metrics.merges == 0 and metrics.num_runs == 2
  assert metrics.max_erl == pytest.approx(40.0)


def test_two_skeletons_are_weighted_by_length():
  # Two perfect skeletons of 30 and 10: 30/40 * 30 + 10/40 * 10.
  metrics = _score([_chain(1, 4), _chain(2, 2, start=(0, 50, 0))], [[1, 1, 1, 1], [2, 2]])
  assert metrics.erl == pytest.approx((30 ** 2 + 10 ** 2) / 40)  # 25
  assert metrics.num_skeletons == 2


def test_merge_of_two_skeletons_zeroes_the_merging_segment_only():
  # Skeleton 1 (length 40) lies wholly in segment 7. Skeleton 2 (length 20) has its
  # first node in 7, the rest in 9. Segment 7 merges the two: all of skeleton 1 and
  # the edge 0-10 of skeleton 2 are errors; the edge 10-20 (segment 9) is a run of 10.
  metrics = _score([_chain(1, 5), _chain(2, 3, start=(0, 100, 0))],
                   [[7, 7, 7, 7, 7], [7, 9, 9]])
  assert metrics.erl == pytest.approx(10 ** 2 / 60)
  assert metrics.merges == 1 and metrics.merging_segments == {7: [1, 2]}
  assert metrics.splits == 1  # Skeleton 2 holds segments 7 and 9.
  assert metrics.merged_length == pytest.approx(50.0)
  assert metrics.max_erl == pytest.approx((40 ** 2 + 20 ** 2) / 60)
  report = sk.format_report(metrics, 'toy')
  assert 'segments merging skeletons' in report and '           7: 1 2' in report


def test_complete_merge_gives_zero():
  metrics = _score([_chain(1, 3), _chain(2, 3, start=(0, 100, 0))], [[5, 5, 5], [5, 5, 5]])
  assert metrics.erl == 0.0 and metrics.merges == 1 and metrics.num_runs == 0


def test_background_gaps_break_runs():
  # 0-10 in segment 5, 20 unsegmented, 30-60 in segment 5 again: the two edges
  # touching the gap are errors and the rest form two runs (10 and 30), not one of 40.
  metrics = _score([_chain(1, 7)], [[5, 5, 0, 5, 5, 5, 5]])
  assert metrics.erl == pytest.approx((10 ** 2 + 30 ** 2) / 60)
  assert metrics.unsegmented_length == pytest.approx(20.0)
  assert metrics.splits == 0 and metrics.merges == 0 and metrics.num_runs == 2


def test_background_on_two_skeletons_is_not_a_merge():
  metrics = _score([_chain(1, 3), _chain(2, 3, start=(0, 100, 0))], [[0, 3, 3], [4, 4, 0]])
  assert metrics.merges == 0
  assert metrics.erl == pytest.approx((10 ** 2 + 10 ** 2) / 40)


def test_runs_follow_branches():
  # A Y: arms of 20 (+x) and 10 (+y) in segment 1 meet at the origin; the arm of 10
  # along +z ends in segment 2. The first two arms are one run of 30.
  positions = [[0, 0, 0], [10, 0, 0], [20, 0, 0], [0, 10, 0], [0, 0, 10]]
  skeletons = sk.Skeletons(positions, [[0, 1], [1, 2], [0, 3], [0, 4]], [1] * 5)
  metrics = sk.run_length_metrics(skeletons, [1, 1, 1, 1, 2])
  assert metrics.erl == pytest.approx(30 ** 2 / 40)
  assert metrics.num_runs == 1 and metrics.splits == 1


def test_no_skeletons():
  metrics = sk.run_length_metrics(sk.Skeletons.concatenate([]), [])
  assert math.isnan(metrics.erl) and metrics.num_skeletons == 0
  assert metrics.to_json_dict()['erl_nm'] is None


def test_bad_skeletons():
  with pytest.raises(sk.SkeletonError, match='two different objects'):
    sk.Skeletons([[0, 0, 0], [1, 0, 0]], [[0, 1]], [1, 2])
  with pytest.raises(sk.SkeletonError, match='outside'):
    sk.Skeletons([[0, 0, 0]], [[0, 1]], [1])
  with pytest.raises(sk.SkeletonError, match='node segments'):
    sk.run_length_metrics(_chain(1, 3), [1, 1])
  with pytest.raises(sk.SkeletonError, match='voxel size'):
    sk.check_voxel_size((10, 0, 10))


# ----------------------------------------------------------------------------
# Segments from a zyx volume.


def test_node_segments_are_read_at_xyz_positions_in_zyx_arrays():
  voxel_size = (4.0, 5.0, 40.0)  # xyz
  segmentation = np.zeros((3, 4, 6), dtype=np.uint64)  # zyx, global xyz start (10, 20, 30)
  segmentation[1, 2, 5] = 8  # Global voxel x=15, y=22, z=31.
  segmentation[2, 3, 0] = 9  # Global voxel x=10, y=23, z=32.
  positions = [[15 * 4, 22 * 5, 31 * 40], [10 * 4 + 1, 23 * 5 - 2, 32 * 40 + 15],
               [16 * 4, 22 * 5, 31 * 40]]  # The last one is past the x extent.
  skeletons = sk.Skeletons(positions, [[0, 1], [1, 2]], [1, 1, 1])
  segments, inside = sk.node_segments(skeletons, segmentation, voxel_size, (10, 20, 30))
  np.testing.assert_array_equal(segments, [8, 9, 0])
  np.testing.assert_array_equal(inside, [True, True, False])


def test_evaluate_skeletons_cuts_nodes_outside_the_region():
  # A chain of 6 nodes along x, 10 nm apart, over a region holding the first 4 voxels.
  segmentation = np.full((2, 3, 4), 3, dtype=np.uint32)
  metrics = sk.evaluate_skeletons(_chain(1, 6, start=(0, 10, 10)), segmentation, (10, 10, 10))
  assert metrics.total_length == pytest.approx(30.0)
  assert metrics.erl == pytest.approx(30.0) and metrics.num_nodes == 4


# ----------------------------------------------------------------------------
# SWC files.


def _branching_and_chain() -> sk.Skeletons:
  y = sk.Skeletons([[0, 0, 0], [10.5, 0, 0], [20, 1, 0], [0, 10, 0], [0, 0, 12.25]],
                   [[0, 1], [1, 2], [0, 3], [0, 4]], [3] * 5)
  return sk.Skeletons.concatenate([y, _chain(8, 4, start=(100, 100, 100), axis=2)])


def _edge_set(skeletons: sk.Skeletons) -> set:
  """Edges as unordered pairs of node positions, with the object partition."""
  out = set()
  for a, b in skeletons.edges:
    pa, pb = (tuple(skeletons.positions_xyz[i]) for i in (a, b))
    out.add(frozenset([pa, pb]))
  return out


def _partition(skeletons: sk.Skeletons) -> set:
  return {frozenset(map(tuple, skeletons.positions_xyz[skeletons.object_ids == i]))
          for i in np.unique(skeletons.object_ids)}


def test_swc_round_trip_one_file_per_object(tmp_path):
  original = _branching_and_chain()
  paths = sk.write_swc_files(str(tmp_path / 'swc'), original)
  assert sorted(p.rsplit('/', 1)[-1] for p in paths) == ['3.swc', '8.swc']
  read = sk.read_swc([str(tmp_path / 'swc')])
  assert read.num_nodes == original.num_nodes
  assert _edge_set(read) == _edge_set(original)
  assert _partition(read) == _partition(original)
  assert read.lengths()[1] == pytest.approx(original.lengths()[3])
  # Scores do not change through the files.
  segments = [1, 1, 1, 2, 0, 5, 5, 5, 5]
  by_position = dict(zip(map(tuple, original.positions_xyz), segments))
  read_segments = [by_position[tuple(p)] for p in read.positions_xyz]
  assert (sk.run_length_metrics(read, read_segments).erl ==
          pytest.approx(sk.run_length_metrics(original, segments).erl))


def test_swc_files_are_replaced_as_a_set(tmp_path):
  directory = tmp_path / 'swc'
  sk.write_swc_files(str(directory), _branching_and_chain())
  sk.write_swc_files(str(directory), _chain(4, 3))
  assert os.listdir(directory) == ['4.swc']  # No stale 3.swc or 8.swc.
  (directory / 'notes.txt').write_text('mine')
  with pytest.raises(sk.SkeletonError, match='other than .swc'):
    sk.write_swc_files(str(directory), _chain(4, 3))
  assert sorted(os.listdir(directory)) == ['4.swc', 'notes.txt']


def test_swc_trees_in_one_file(tmp_path):
  path = tmp_path / 'two_trees.swc'
  path.write_text(sk.format_swc(_branching_and_chain()))
  by_tree = sk.read_swc([str(path)], grouping='tree')
  assert _partition(by_tree) == _partition(_branching_and_chain())
  by_file = sk.read_swc([str(path)], grouping='file')
  assert set(by_file.object_ids) == {1}


def test_swc_parsing(tmp_path):
  path = tmp_path / 'hand.swc'
  path.write_text('# a comment\n\n'
                  '5 1 0 0 0 1.0 -1\n'
                  '7 3 30 40 0 0.5 5  # child of 5\n'
                  '9 3 30 40 12 0.5 7\n')
  skeletons = sk.read_swc([str(path)])
  assert skeletons.num_nodes == 3
  assert skeletons.lengths() == {1: pytest.approx(62.0)}


@pytest.mark.parametrize('text,message', [
    ('1 0 0 0 0 1\n', r'hand.swc:1: expected "id type x y z radius parent"'),
    ('1 0 0 0 zero 1 -1\n', r'hand.swc:1: expected'),
    ('1 0 0 0 0 1 -1\n2 0 1 0 0 1 4\n', 'parent 4, which is not in the file'),
    ('1 0 0 0 0 1 -1\n1 0 1 0 0 1 1\n', 'not unique'),
])
def test_bad_swc(tmp_path, text, message):
  path = tmp_path / 'hand.swc'
  path.write_text(text)
  with pytest.raises(sk.SkeletonError, match=message):
    sk.read_swc([str(path)])


def test_missing_swc(tmp_path):
  with pytest.raises(sk.SkeletonError, match='does not exist'):
    sk.read_swc([str(tmp_path / 'nope.swc')])
  (tmp_path / 'empty').mkdir()
  with pytest.raises(sk.SkeletonError, match='no .swc files'):
    sk.read_swc([str(tmp_path / 'empty')])
  with pytest.raises(sk.SkeletonError, match='grouping'):
    sk.read_swc([], grouping='neuron')


# ----------------------------------------------------------------------------
# kimimaro skeletons of labels.


def _capsule(shape_zyx, voxel_size_xyz, end_a_xyz, end_b_xyz, radius) -> np.ndarray:
  """Voxels (zyx mask) within `radius` (nm) of the segment from end_a to end_b (nm, xyz)."""
  z, y, x = np.indices(shape_zyx)
  points = np.stack([x * voxel_size_xyz[0], y * voxel_size_xyz[1], z * voxel_size_xyz[2]], -1)
  a, b = np.asarray(end_a_xyz, float), np.asarray(end_b_xyz, float)
  along = np.clip(((points - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
  return np.linalg.norm(points - (a + along[..., None] * (b - a)), axis=-1) <= radius


def test_kimimaro_tubes_have_their_length_in_anisotropic_voxels():
  voxel_size = (8.0, 8.0, 20.0)  # xyz nm
  labels = np.zeros((24, 30, 90), dtype=np.uint64)  # zyx
  # A capsule along x (460 nm axis + 2 x 60 nm caps) and one along z (280 + 2 x 40 nm).
  labels[_capsule(labels.shape, voxel_size, (100, 120, 240), (560, 120, 240), 60)] = 5
  labels[_capsule(labels.shape, voxel_size, (660, 80, 100), (660, 80, 380), 40)] = 6
  offset = (1000, 0, 10)  # Global voxel position of labels[0, 0, 0], xyz.
  skeletons = sk.skeletonize_labels(labels, voxel_size, sk.KimimaroParams(), offset)
  lengths = skeletons.lengths()
  assert set(lengths) == {5, 6}
  assert lengths[5] == pytest.approx(580, rel=0.1)
  assert lengths[6] == pytest.approx(360, rel=0.1)
  # Positions are global: the x capsule lies between x = 1000 * 8 + 100 and + 560 nm.
  along_x = skeletons.positions_xyz[skeletons.object_ids == 5]
  assert along_x[:, 0].min() >= 8000 + 40 - 8 and along_x[:, 0].max() <= 8000 + 620 + 8
  assert np.all(np.abs(along_x[:, 2] - (10 * 20 + 240)) <= 60)

  # Every node lies in its own label, so the groundtruth scores perfectly on itself.
  metrics = sk.evaluate_skeletons(skeletons, labels, voxel_size, offset)
  assert metrics.erl == pytest.approx(metrics.max_erl)
  assert metrics.merges == 0 and metrics.splits == 0 and metrics.num_skeletons == 2
  # One segment over both capsules is a merge: nothing is correct.
  merged = sk.evaluate_skeletons(skeletons, (labels > 0).astype(np.uint8), voxel_size, offset)
  assert merged.erl == 0.0 and merged.merges == 1


def test_kimimaro_dust_and_bad_params():
  labels = np.zeros((4, 5, 6), dtype=np.uint32)
  labels[1:3, 1:4, 1:5] = 2  # 24 voxels.
  assert sk.skeletonize_labels(labels, (1, 1, 1), sk.KimimaroParams(dust_threshold=100)
                               ).num_nodes == 0
  assert sk.skeletonize_labels(labels, (1, 1, 1), sk.KimimaroParams(dust_threshold=0, const=1)
                               ).num_nodes > 1
  with pytest.raises(sk.SkeletonError, match='scale'):
    sk.skeletonize_labels(labels, (1, 1, 1), sk.KimimaroParams(scale=-1))
  with pytest.raises(sk.SkeletonError, match='voxel size'):
    sk.skeletonize_labels(labels, (1, 1), sk.KimimaroParams())


# ----------------------------------------------------------------------------
# evaluate_segmentation.py


def _run_script(repo_root, *args):
  return subprocess.run([sys.executable, str(repo_root / 'evaluate_segmentation.py'), *args],
                        capture_output=True, text=True, cwd=repo_root, timeout=300)


@pytest.fixture
def capsule_files(tmp_path):
  """Groundtruth (two capsules, zyx 24x30x90 at 8x8x20 nm) and a segmentation splitting one."""
  voxel_size = (8.0, 8.0, 20.0)
  gt = np.zeros((24, 30, 90), dtype=np.uint32)
  gt[_capsule(gt.shape, voxel_size, (100, 120, 240), (560, 120, 240), 60)] = 5
  gt[_capsule(gt.shape, voxel_size, (660, 80, 100), (660, 80, 380), 40)] = 6
  seg = gt.copy()
  seg[:, :, 45:][seg[:, :, 45:] == 5] = 7  # The x capsule cut at x = 45 voxels (360 nm).
  with h5py.File(tmp_path / 'gt.h5', 'w') as f:
    f['stack'] = gt
  with h5py.File(tmp_path / 'seg.h5', 'w') as f:
    f['seg'] = seg
  return tmp_path, voxel_size, gt, seg


def test_script_json_holds_erl(capsule_files, repo_root):
  tmp_path, voxel_size, gt, seg = capsule_files
  common = ['--segmentation', f'{tmp_path}/seg.h5:seg', '--groundtruth',
            f'{tmp_path}/gt.h5:stack', '--voxel_size', '8,8,20']
  proc = _run_script(repo_root, *common, '--output_json', str(tmp_path / 'eval.json'),
                     '--write_skeletons', str(tmp_path / 'swc'))
  assert proc.returncode == 0, proc.stderr
  assert 'expected run length (nm)' in proc.stdout
  erl = json.loads((tmp_path / 'eval.json').read_text())['erl']
  expected = sk.evaluate_skeletons(sk.skeletonize_labels(gt, voxel_size), seg, voxel_size)
  assert erl['erl_nm'] == pytest.approx(expected.erl)
  assert erl['num_skeletons'] == 2 and erl['splits'] == 1 and erl['merges'] == 0
  assert erl['skeleton_length_nm'] == pytest.approx(expected.total_length)
  assert 0 < erl['erl_nm'] < erl['max_erl_nm']
  assert erl['voxel_size_xyz_nm'] == [8.0, 8.0, 20.0] and erl['kimimaro']['scale'] == 1.5
  assert sorted(os.listdir(tmp_path / 'swc')) == ['5.swc', '6.swc']

  # The written skeletons give the same scores; --noerl leaves the key out.
  proc = _run_script(repo_root, *common, '--output_json', str(tmp_path / 'swc.json'),
                     '--skeletons', str(tmp_path / 'swc'))
  assert proc.returncode == 0, proc.stderr
  from_swc = json.loads((tmp_path / 'swc.json').read_text())['erl']
  assert from_swc['erl_nm'] == pytest.approx(erl['erl_nm'])
  assert from_swc['kimimaro'] is None and from_swc['skeletons'].startswith('SWC')
  proc = _run_script(repo_root, *common, '--output_json', str(tmp_path / 'none.json'), '--noerl')
  assert proc.returncode == 0, proc.stderr
  assert 'erl' not in json.loads((tmp_path / 'none.json').read_text())


@pytest.mark.parametrize('extra,message', [
    (['--noerl', '--kimimaro_scale', '2'], '--kimimaro_scale has no effect with --noerl'),
    (['--skeletons', 'x.swc', '--kimimaro_const', '100'], '--kimimaro_const applies to'),
    (['--swc_grouping', 'tree'], '--swc_grouping applies to --skeletons only'),
    (['--skeletons', 'missing.swc'], 'missing.swc does not exist'),
    (['--kimimaro_dust_threshold', '-1'], '--kimimaro_dust_threshold=-1: expected an integer >= 0'),
    (['--voxel_size', '8,8'], '--voxel_size must be three positive numbers'),
])
def test_script_bad_skeleton_flags(capsule_files, repo_root, extra, message):
  tmp_path = capsule_files[0]
  out = tmp_path / 'bad.json'
  proc = _run_script(repo_root, '--segmentation', f'{tmp_path}/seg.h5:seg', '--groundtruth',
                     f'{tmp_path}/gt.h5:stack', '--output_json', str(out), *extra)
  assert proc.returncode != 0 and message in proc.stderr, proc.stderr
  assert 'Traceback' not in proc.stderr and not out.exists()
