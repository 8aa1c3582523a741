"""Split consensus on small hand-checked segmentations (zyx, non-cubic)."""

from __future__ import annotations

import numpy as np
import pytest

from ffn.inference import consensus_pb2
from ffn.inference.io import results
from ffn.inference.pipelines import consensus

CORNER = (0, 10, 20)  # zyx
SHAPE = (2, 3, 4)


def _v1() -> np.ndarray:
  """Object 1 at x < 2, object 2 at x >= 2; one background voxel."""
  v1 = np.zeros(SHAPE, dtype=np.uint64)
  v1[:, :, :2] = 1
  v1[:, :, 2:] = 2
  v1[1, 2, 0] = 0
  return v1


def _v2() -> np.ndarray:
  """Object 7 at y == 0, object 8 at y >= 1."""
  v2 = np.zeros(SHAPE, dtype=np.uint64)
  v2[:, 0, :] = 7
  v2[:, 1:, :] = 8
  return v2


def _request(min_size=0, **fields) -> consensus_pb2.ConsensusRequest:
  request = consensus_pb2.ConsensusRequest(split_min_size=min_size, **fields)
  return request


def test_split_keeps_largest_overlap_id_and_numbers_the_rest():
  # Overlaps: (1,7)=4, (1,8)=7, (2,7)=4, (2,8)=8 voxels. Ids 1 and 2 stay with
  # 8, their largest partner; the (1,7) and (2,7) pieces become 3 and 4.
  out = consensus.compute_consensus_for_segmentations(_v1(), _v2(), _request())
  expected = np.array([[[3, 3, 4, 4], [1, 1, 2, 2], [1, 1, 2, 2]],
                       [[3, 3, 4, 4], [1, 1, 2, 2], [0, 1, 2, 2]]])
  np.testing.assert_array_equal(out, expected)
  assert out.dtype == np.uint8


def test_split_min_size_drops_small_pieces():
  out = consensus.compute_consensus_for_segmentations(_v1(), _v2(), _request(min_size=5))
  expected = np.array([[[0, 0, 0, 0], [1, 1, 2, 2], [1, 1, 2, 2]],
                       [[0, 0, 0, 0], [1, 1, 2, 2], [0, 1, 2, 2]]])
  np.testing.assert_array_equal(out, expected)


def test_background_of_the_second_segmentation_is_a_piece_of_its_own():
  v2 = np.zeros(SHAPE, dtype=np.uint64)
  v2[:, :, :3] = 8
  # Object 2 overlaps 8 at x == 2 (6 voxels) and background at x == 3 (6
  # voxels): the tie goes to the smaller id, 0, so x == 3 keeps id 2 and
  # x == 2 becomes the new id 3.
  out = consensus.compute_consensus_for_segmentations(_v1(), v2, _request())
  expected = np.array([[[1, 1, 3, 2], [1, 1, 3, 2], [1, 1, 3, 2]],
                       [[1, 1, 3, 2], [1, 1, 3, 2], [0, 1, 3, 2]]])
  np.testing.assert_array_equal(out, expected)


def _save(directory, corner, labels, origins) -> None:
  results.save_subvolume(labels, origins, results.segmentation_path(str(directory), corner))


def test_run_consensus_writes_loadable_results_with_origins(tmp_path):
  origins = {1: results.OriginInfo((0, 11, 21), 5, 0.1),
             2: results.OriginInfo((1, 12, 23), 6, 0.2)}
  _save(tmp_path / 'a', CORNER, _v1(), origins)
  _save(tmp_path / 'b', CORNER, _v2(), {7: results.OriginInfo((0, 10, 20), 1, 0.0)})
  request = consensus_pb2.ConsensusRequest(split_min_size=0)
  request.segmentation1.directory = str(tmp_path / 'a')
  request.segmentation1.split_cc = False
  request.segmentation2.directory = str(tmp_path / 'b')
  request.segmentation_output_dir = str(tmp_path / 'c')

  paths = consensus.run_consensus(request)
  assert paths == [str(tmp_path / 'c' / '20' / '10' / 'seg-20_10_0.npz')]
  seg, loaded_origins = results.load_segmentation(str(tmp_path / 'c'), CORNER, split_cc=False)
  np.testing.assert_array_equal(seg, consensus.compute_consensus_for_segmentations(
      _v1(), _v2(), _request()))
  # Ids 3 and 4 are new: no origin; 1 and 2 keep segmentation1's.
  assert loaded_origins == origins


def test_run_consensus_resumes_and_checks_inputs(tmp_path):
  _save(tmp_path / 'a', CORNER, _v1(), {})
  _save(tmp_path / 'a', (0, 0, 0), _v1(), {})
  _save(tmp_path / 'b', CORNER, _v2(), {})
  request = consensus_pb2.ConsensusRequest()
  request.segmentation1.directory = str(tmp_path / 'a')
  request.segmentation2.directory = str(tmp_path / 'b')
  request.segmentation_output_dir = str(tmp_path / 'c')
  with pytest.raises(ValueError, match=r'lacks 1 subvolume.*\(0, 0, 0\)'):
    consensus.run_consensus(request)
  assert not (tmp_path / 'c').exists()

  (path,) = consensus.run_consensus(request, corners=[CORNER])
  before = np.load(path, allow_pickle=True)['segmentation']
  _save(tmp_path / 'b', CORNER, _v1(), {})  # A second run must not recompute.
  consensus.run_consensus(request, corners=[CORNER])
  np.testing.assert_array_equal(np.load(path, allow_pickle=True)['segmentation'], before)


def test_bad_requests_name_the_field(tmp_path):
  with pytest.raises(ValueError, match='segmentation1.directory'):
    consensus.check_request(consensus_pb2.ConsensusRequest())
  request = consensus_pb2.ConsensusRequest(split_min_size=-1)
  request.segmentation1.directory = request.segmentation2.directory = str(tmp_path)
  with pytest.raises(ValueError, match='split_min_size is -1'):
    consensus.check_request(request)
  request.split_min_size = 0
  with pytest.raises(ValueError, match='segmentation_output_dir'):
    consensus.run_consensus(request)


def test_reverse_sample_config_differs_from_the_forward_one_in_seeds_and_output_only():
  from conftest import REPO_ROOT  # pylint: disable=g-import-not-at-top
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from ffn.inference import inference_pb2  # pylint: disable=g-import-not-at-top
  parse = lambda name: text_format.Parse((REPO_ROOT / 'configs' / name).read_text(),
                                         inference_pb2.InferenceRequest())
  forward = parse('inference_training_sample2.pbtxt')
  reverse = parse('inference_training_sample2_reverse.pbtxt')
  assert reverse.seed_policy == 'PolicyInvertOrigins'
  assert reverse.seed_policy_args == '{"segmentation_dir": "%s"}' % forward.segmentation_output_dir
  for field in ('seed_policy', 'seed_policy_args', 'segmentation_output_dir'):
    reverse.ClearField(field)
    forward.ClearField(field)
  assert reverse == forward


def test_forward_reverse_recipe_with_the_runner(tmp_path):
  """A forward run and a PolicyInvertOrigins run of one box: consensus is their intersection."""
  import json  # pylint: disable=g-import-not-at-top
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from ffn.inference import inference_pb2  # pylint: disable=g-import-not-at-top
  from ffn.inference.request import runner as runner_lib  # pylint: disable=g-import-not-at-top
  import synthetic_ffn  # pylint: disable=g-import-not-at-top

  image, labels = synthetic_ffn.blob_volume()
  spec = synthetic_ffn.write_h5(tmp_path / 'image.h5', image)
  forward, reverse = str(tmp_path / 'forward'), str(tmp_path / 'reverse')
  policies = {forward: ('PolicyGrid3d', {'step': 4, 'offsets': [2]}),
              reverse: ('PolicyInvertOrigins', {'segmentation_dir': forward})}
  for out_dir, (policy, args) in policies.items():
    text = synthetic_ffn.request_text(spec, 'unused', out_dir, seed_policy=f'"{policy}"',
                                      seed_policy_args=json.dumps(json.dumps(args)))
    runner = runner_lib.Runner()
    runner.start(text_format.Parse(text, inference_pb2.InferenceRequest()),
                 model=synthetic_ffn.NumpyModel())
    try:
      runner.run((0, 0, 0), labels.shape)
    finally:
      runner.stop_executor()

  request = consensus_pb2.ConsensusRequest(split_min_size=30)
  request.segmentation1.directory = forward
  request.segmentation2.directory = reverse
  request.segmentation_output_dir = str(tmp_path / 'consensus')
  consensus.run_consensus(request)
  seg_f, origins_f = results.load_segmentation(forward, (0, 0, 0))
  seg_r, _ = results.load_segmentation(reverse, (0, 0, 0))
  seg_c, origins_c = results.load_segmentation(str(tmp_path / 'consensus'), (0, 0, 0),
                                               split_cc=False)
  # The flat threshold model leaves blobs in several pieces, differently in
  # each run; the consensus is their intersection.
  assert len(np.unique(seg_f)) != len(np.unique(seg_r))
  pairs, counts = np.unique(np.stack([seg_f.ravel(), seg_r.ravel()]), axis=1, return_counts=True)
  kept = 0
  for (f, r), n in zip(pairs.T, counts):
    piece = seg_c[(seg_f == f) & (seg_r == r)]
    if f == 0 or n < 30:
      assert not piece.any()
      continue
    kept += 1
    (cid,) = np.unique(piece)
    assert cid != 0 and np.sum(seg_c == cid) == n  # The piece is exactly one consensus segment.
  assert kept == len(np.unique(seg_c)) - 1 >= 3
  assert set(origins_c) <= set(origins_f)
  assert all(origins_c[i] == origins_f[i] for i in origins_c)
