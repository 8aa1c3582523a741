"""seed_points.PolicyPoints: objects grown only from the user's points (global xyz)."""

from __future__ import annotations

import json
import logging

from google.protobuf import text_format
import numpy as np
import pytest

from ffn.inference import inference_pb2
from ffn.inference.io import results
from ffn.inference.policies import seed
from ffn.inference.policies import seed_points
from ffn.inference.request import plan
from ffn.inference.request import runner as runner_lib
from ffn.utils import bounding_box
from ffn.utils import errors

from seed_reference import FakeCanvas
import synthetic_ffn

# Four blobs (zyx start, end), a dark gap between each; the points name three.
BLOBS = [((3, 4, 4), (17, 16, 20)), ((3, 24, 26), (17, 36, 44)),
         ((3, 4, 26), (17, 16, 44)), ((3, 24, 4), (17, 36, 20))]
POINTS_XYZ = [(12, 10, 10), (35, 30, 10), (35, 10, 10)]  # In blobs 1, 2 and 3.


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp('points')
  image, labels = synthetic_ffn.blob_volume(blobs=BLOBS)
  spec = synthetic_ffn.write_h5(root / 'image.h5', image)
  return spec, synthetic_ffn.write_tf_checkpoint(root), labels


def _request(setup, out_dir, policy='PolicyPoints', **args):
  spec, ckpt, _ = setup
  text = synthetic_ffn.request_text(spec, ckpt, str(out_dir), seed_policy=f'"{policy}"',
                                    seed_policy_args=json.dumps(json.dumps(args)))
  return text_format.Parse(text, inference_pb2.InferenceRequest())


def _segment(request, corner_xyz=(0, 0, 0), size_xyz=(48, 40, 20)):
  box = bounding_box.BoundingBox(start=corner_xyz, size=size_xyz)
  with runner_lib.Runner(request) as runner:
    runner.segment(box)
  return results.load_segmentation(request.segmentation_output_dir, box.start_zyx,
                                   split_cc=False)


def _blob_of(labels, seg, sid):
  """The one label under segment `sid`, checking that it covers most of that blob."""
  under = np.unique(labels[seg == sid])
  assert len(under) == 1 and under[0] > 0
  assert np.sum(seg == sid) > 0.5 * np.sum(labels == under[0])
  return int(under[0])


def test_three_points_give_exactly_their_three_objects(setup, tmp_path):
  labels = setup[2]
  seg, origins = _segment(_request(setup, tmp_path, points=[list(p) for p in POINTS_XYZ]))
  assert sorted(origins) == [1, 2, 3]
  # In the given order, each object the whole blob under its point; blob 4 is left alone.
  assert [_blob_of(labels, seg, sid) for sid in (1, 2, 3)] == [1, 2, 3]
  assert not np.any(seg[labels == 4])
  assert [origins[sid].start_zyx for sid in (1, 2, 3)] == [p[::-1] for p in POINTS_XYZ]


def test_points_file_with_ids_and_a_box_that_leaves_points_out(setup, tmp_path, caplog):
  labels = setup[2]
  points = tmp_path / 'points.csv'
  # A comment, a blank line, ids, one point outside the box and one in its margin.
  points.write_text('# x,y,z,id\n35,30,10,7\n\n35,10,10,3\n12,10,10,5\n30,39,10,9\n')
  caplog.set_level(logging.INFO)
  # x 24..47: blob 1 (x 4-19) and its point lie outside the box.
  seg, origins = _segment(_request(setup, tmp_path / 'out', points_file=str(points)),
                          corner_xyz=(24, 0, 0), size_xyz=(24, 40, 20))
  assert sorted(origins) == [3, 7]
  whole = np.zeros_like(labels)
  whole[:, :, 24:] = seg
  assert _blob_of(labels, whole, 7) == 2 and _blob_of(labels, whole, 3) == 3
  assert any('1 outside it and 1 too near its border' in r.getMessage() for r in caplog.records)


def test_a_taken_id_gives_the_next_free_one(setup, tmp_path):
  labels = setup[2]
  points = [[12, 10, 10, 2], [35, 30, 10, 2], [35, 10, 10]]
  seg, origins = _segment(_request(setup, tmp_path, points=points))
  # The second point's id 2 is taken by the first object: it gets the next free id, 1;
  # the third gets 3 (2 is taken).
  assert sorted(origins) == [1, 2, 3]
  assert [_blob_of(labels, seg, sid) for sid in (2, 1, 3)] == [1, 2, 3]


def test_points_then_a_grid_fill_the_rest(setup, tmp_path):
  labels = setup[2]
  args = {'policies': [['PolicyPoints', {'points': [[35, 30, 10, 40]]}],
                       ['PolicyGrid3d', {'step': 4, 'offsets': [2]}]]}
  seg, origins = _segment(_request(setup, tmp_path, 'SequentialPolicies', **args))
  assert _blob_of(labels, seg, 40) == 2
  assert origins[40].start_zyx == (10, 30, 35)
  assert all(np.any(seg[labels == i]) for i in (1, 2, 3, 4))


def test_positions_are_global_and_zyx():
  canvas = FakeCanvas(np.zeros((10, 20, 30), np.float32), margin=(1, 2, 3))
  policy = seed.PolicyPoints(canvas, points=[[105, 52, 13, 8], [102, 52, 13]],
                             corner=(10, 50, 100))
  assert list(policy) == [(3, 2, 5)]  # The second point lies in the x margin (3).
  assert policy.id_at((3, 2, 5)) == 8 and policy.id_at((3, 2, 2)) is None


def test_a_checkpoint_of_other_points_is_refused():
  canvas = FakeCanvas(np.zeros((10, 20, 30), np.float32), margin=(1, 1, 1))
  first = seed.PolicyPoints(canvas, points=[[5, 5, 5], [9, 9, 5]])
  next(first)
  state = first.get_state()
  same = seed.PolicyPoints(canvas, points=[[5, 5, 5], [9, 9, 5]])
  same.set_state(state)
  assert list(same) == [(5, 9, 9)]
  with pytest.raises(seed_points.PointsError, match='other seed points'):
    seed.PolicyPoints(canvas, points=[[5, 5, 5], [8, 9, 5]]).set_state(state)


@pytest.mark.parametrize('args,message', [
    ({}, 'needs either "points"'),
    ({'points': [[1, 2, 3]], 'points_file': 'p.txt'}, 'needs either "points"'),
    ({'points': [[1, 2]]}, r'points\[0\] has 2 values'),
    ({'points': [[1, 2, 3], [1, 2, 'a']]}, r"points\[1\]: 'a' is not a number"),
    ({'points': [[1, 2, 3.5]]}, 'not a whole voxel coordinate'),
    ({'points': [[1, -2, 3]]}, 'is negative'),
    ({'points': [[1, 2, 3, 2**31]]}, 'id 2147483648 is outside'),
    ({'points_file': '/nonexistent/points.csv'}, 'is not a file'),
    ({'points': [[1, 2, 3]], 'pointz': 1}, "'pointz'"),
])
def test_bad_points_are_refused_before_work(args, message):
  request = inference_pb2.InferenceRequest(seed_policy='PolicyPoints',
                                           seed_policy_args=json.dumps(args))
  with pytest.raises(errors.FFNError, match=message):
    plan.seed_policy(request)


def test_a_bad_line_is_named_by_its_number(tmp_path):
  path = tmp_path / 'points.txt'
  path.write_text('1 2 3\n4,5,6\n7,8\n')
  request = inference_pb2.InferenceRequest(
      seed_policy='PolicyPoints', seed_policy_args=json.dumps({'points_file': str(path)}))
  with pytest.raises(errors.FFNError, match=f'points_file {path} line 3 has 2 values'):
    plan.seed_policy(request)


def test_a_chain_checkpoint_of_other_points_is_refused():
  canvas = FakeCanvas(np.zeros((10, 20, 30), np.float32), margin=(1, 1, 1))

  def chain(points):
    return seed.SequentialPolicies(canvas, policies=[
        ['PolicyGrid3d', {'step': 5, 'offsets': [2]}], ['PolicyPoints', {'points': points}]])

  first = chain([[5, 5, 5], [9, 9, 5]])
  next(first)
  state = first.get_state()
  same = chain([[5, 5, 5], [9, 9, 5]])
  same.set_state(state)
  assert list(same)[-2:] == [(5, 5, 5), (5, 9, 9)]
  with pytest.raises(seed_points.PointsError, match='other seed points'):
    chain([[5, 5, 5], [8, 9, 5]]).set_state(state)
