"""Resegmentation and agglomeration with the numpy threshold model on a synthetic volume.

In `synthetic_ffn.cut_and_wall_volume`, ids 1 and 2 are one object cut in two
and ids 3 and 4 two objects apart by a dark wall: resegmentation must merge
1 and 2, not 3 and 4.
"""

from __future__ import annotations

from google.protobuf import text_format
import numpy as np
import pytest

from ffn.inference import inference_pb2
from ffn.inference.pipelines import agglomeration
from ffn.inference.pipelines import resegmentation
from ffn.inference.pipelines import resegmentation_analysis
from ffn.inference.request import runner as runner_lib

import synthetic_ffn

VOXEL_SIZE = (2.0, 1.0, 1.0)  # zyx


@pytest.fixture(scope='module')
def volumes(tmp_path_factory):
  root = tmp_path_factory.mktemp('reseg')
  image, seg = synthetic_ffn.cut_and_wall_volume()
  return (synthetic_ffn.write_h5(root / 'image.h5', image),
          synthetic_ffn.write_h5(root / 'seg.h5', seg, 'seg'), seg)


def _request(volumes, out_dir, **extra) -> inference_pb2.ResegmentationRequest:
  image_spec, seg_spec, _ = volumes
  inference = synthetic_ffn.request_text(image_spec, 'unused', str(out_dir / 'inference'))
  text = (f'inference {{ {inference} init_segmentation {{ hdf5: "{seg_spec}" }} }}\n'
          f'output_directory: "{out_dir}"\n'
          'radius { x: 12 y: 8 z: 6 } analysis_radius { x: 10 y: 6 z: 4 }\n'
          'max_retry_iters: 2 exclusion_radius { x: 2 y: 2 z: 1 }\n'
          'segment_recovery_fraction: 0.6\n')
  request = text_format.Parse(text, inference_pb2.ResegmentationRequest())
  for key, value in extra.items():
    setattr(request, key, value)
  return request


@pytest.fixture
def runner_for(volumes):
  runners = []

  def make(request):
    runner = runner_lib.Runner()
    runner.start(request.inference, model=synthetic_ffn.NumpyModel())
    runners.append(runner)
    return runner

  yield make
  for runner in runners:
    runner.stop_executor()


def test_candidate_pairs_are_the_touching_segments(volumes):
  pairs = agglomeration.find_candidate_pairs(volumes[2])
  assert [(p.id_a, p.id_b) for p in pairs] == [(1, 2), (3, 4)]
  # Contacts: the low voxel of each touching pair (x = 23 and x = 24); the point is the middle one.
  assert [p.contacts for p in pairs] == [7 * 11, 7 * 11]
  assert [p.point_zyx for p in pairs] == [(9, 11, 23), (9, 35, 24)]


def test_cut_object_is_merged_and_separate_objects_are_not(volumes, tmp_path, runner_for):
  request = _request(volumes, tmp_path)
  agglomeration.add_points(request, agglomeration.find_candidate_pairs(volumes[2]))
  runner = runner_for(request)
  decisions = agglomeration.resegment_and_decide(request, runner, VOXEL_SIZE)
  assert [(d.point.id_a, d.point.id_b, d.merge) for d in decisions] == [
      (1, 2, True), (3, 4, False)]

  cut, separate = (d.result.eval for d in decisions)
  assert cut.iou > 0.8
  for side in (cut.from_a, cut.from_b):
    assert side.segment_a_consistency > 0.6 and side.segment_b_consistency > 0.6
    assert side.deleted_voxels == 0 and side.num_voxels > 0
  # The seeds are the voxels deepest inside each segment, in global xyz.
  assert 4 <= cut.from_a.origin.x < 24 <= cut.from_b.origin.x < 44
  assert cut.from_a.origin.y == cut.from_b.origin.y == 11
  # The dark wall stops each object: no overlap, nothing of the other segment.
  assert separate.iou == 0.0
  assert separate.from_a.segment_b_consistency == 0.0
  assert separate.from_b.segment_a_consistency == 0.0
  assert separate.from_b.segment_b_consistency > 0.6
  # The analysis box (radius 10, 6, 4 xyz) holds 11 x 11 x 7 voxels of segment 1.
  assert cut.num_voxels_a == 11 * 11 * 7 and cut.radius.x == 10

  merged = agglomeration.merge_segments(volumes[2], [(1, 2)])
  expected = volumes[2].copy()
  expected[expected == 2] = 1
  np.testing.assert_array_equal(merged, expected)


def test_result_file_layout_and_resume(volumes, tmp_path, runner_for):
  request = _request(volumes, tmp_path, subdir_digits=2)
  point = request.points.add(id_a=1, id_b=2)
  point.point.x, point.point.y, point.point.z = 23, 11, 9
  runner = runner_for(request)
  path = resegmentation.process_point(request, runner, 0, VOXEL_SIZE)
  assert path.endswith('1-2_at_23_11_9.npz') and path.startswith(str(tmp_path))
  assert len(path[len(str(tmp_path)) + 1:].split('/')[0]) == 2
  with np.load(path) as data:  # no pickles in our result files
    assert data['probs'].shape == (2, 13, 17, 25) and data['probs'].dtype == np.uint8
    assert tuple(data['corner_zyx']) == (3, 3, 11)
    assert inference_pb2.ResegmentationRequest.FromString(data['request'].tobytes()) == request
  arrays = resegmentation_analysis.load_result(path)
  assert len(arrays['deletes'][0]) == len(arrays['histories'][0]) > 0
  assert arrays['histories'][0].shape[1] == 3
  assert arrays['start_points'][0].shape[1] == 3
  # The result exists: a second call does nothing.
  assert resegmentation.process_point(request, runner, 0, VOXEL_SIZE) is None


def test_points_without_context_or_segments_are_skipped(volumes, tmp_path, runner_for):
  request = _request(volumes, tmp_path)
  near_edge = request.points.add(id_a=1, id_b=2)
  near_edge.point.x, near_edge.point.y, near_edge.point.z = 23, 11, 2  # z - 6 < 0
  absent = request.points.add(id_a=1, id_b=77)
  absent.point.x, absent.point.y, absent.point.z = 23, 11, 9
  runner = runner_for(request)
  decisions = agglomeration.resegment_and_decide(request, runner, VOXEL_SIZE)
  assert [d.merge for d in decisions] == [False, False]
  assert all(d.result is None and 'not resegmented' in d.note for d in decisions)
  assert not list(tmp_path.glob('*.npz'))


def test_merge_rule_defaults_are_the_published_ones():
  rule = resegmentation_analysis.MergeRule()
  assert (rule.min_iou, rule.min_consistency, rule.max_deleted_fraction) == (0.8, 0.6, 0.02)
  result = resegmentation_analysis.resegmentation_pb2.PairResegmentationResult()
  ev = result.eval
  ev.iou = 0.81
  for side in (ev.from_a, ev.from_b):
    side.segment_a_consistency = side.segment_b_consistency = 0.61
    side.num_voxels = 1000
  ev.from_a.deleted_voxels, ev.from_b.deleted_voxels = 19, 500
  assert rule.should_merge(result)  # One side under 2% deleted is enough.
  ev.from_a.deleted_voxels = 20
  assert not rule.should_merge(result)
  ev.from_a.deleted_voxels = 0
  ev.from_b.segment_a_consistency = 0.59
  assert not rule.should_merge(result)
  ev.from_b.segment_a_consistency = 0.61
  ev.iou = 0.79
  assert not rule.should_merge(result)


def test_merge_segments_joins_chains_to_the_smallest_id():
  seg = np.array([[[0, 5, 3, 9, 2]]], dtype=np.uint64)
  merged = agglomeration.merge_segments(seg, [(9, 5), (3, 9)])
  np.testing.assert_array_equal(merged, [[[0, 3, 3, 3, 2]]])
  assert merged.dtype == np.uint64
  np.testing.assert_array_equal(agglomeration.merge_segments(seg, []), seg)


def test_endpoint_request_grows_from_one_segment_in_an_empty_subvolume(volumes, tmp_path,
                                                                        runner_for):
  request = _request(volumes, tmp_path)
  point = request.points.add(id_a=1)
  point.point.x, point.point.y, point.point.z = 23, 11, 9
  runner = runner_for(request)
  path = resegmentation.process_point(request, runner, 0, VOXEL_SIZE)
  assert path.endswith('1-0_at_23_11_9.npz')
  with np.load(path, allow_pickle=True) as data:
    assert data['probs'].shape == (1, 13, 17, 25)
  result = resegmentation_analysis.evaluate_endpoint_resegmentation(path, volumes[2], (6, 8, 12))
  # The object grown from segment 1 runs on into segment 2, its other half.
  assert result.source.num_overlapping > 0.6 * result.source.num_original
  assert result.overlaps[2].num_overlapping > 0.6 * result.overlaps[2].num_original
  assert 3 not in result.overlaps and 4 not in result.overlaps


def test_sample_resegmentation_config_has_the_manual_settings():
  from conftest import REPO_ROOT  # pylint: disable=g-import-not-at-top
  request = text_format.Parse((REPO_ROOT / 'configs' / 'resegmentation_sample.pbtxt').read_text(),
                              inference_pb2.ResegmentationRequest())
  assert request.max_retry_iters == 8 and request.segment_recovery_fraction == pytest.approx(0.6)
  # analysis_radius = radius - the FOV radius (33 // 2).
  assert request.radius.x - request.analysis_radius.x == 16
  assert request.inference.model_name == 'convstack_3d.ConvStack3DFFNModel'
