"""run_agglomeration with the numpy threshold model: pairs in, decisions and merged volume out."""

from __future__ import annotations

import json

from google.protobuf import text_format
import h5py
import numpy as np
import pytest

from ffn.inference import inference_pb2
from ffn.inference.pipelines import resegmentation
from ffn.inference.pipelines import run_agglomeration

import synthetic_ffn

RESEG = ('radius { x: 12 y: 8 z: 6 } analysis_radius { x: 10 y: 6 z: 4 } max_retry_iters: 2 '
         'exclusion_radius { x: 2 y: 2 z: 1 } segment_recovery_fraction: 0.6')


@pytest.fixture(scope='module')
def volumes(tmp_path_factory):
  root = tmp_path_factory.mktemp('agglo')
  image, seg = synthetic_ffn.cut_and_wall_volume()
  return (synthetic_ffn.write_h5(root / 'image.h5', image),
          synthetic_ffn.write_h5(root / 'seg.h5', seg, 'seg'), seg)


def _request(volumes, out_dir, extra='') -> inference_pb2.ResegmentationRequest:
  inference = synthetic_ffn.request_text(volumes[0], 'unused', '')
  text = (f'inference {{ {inference} init_segmentation {{ hdf5: "{volumes[1]}" }} }} '
          f'output_directory: "{out_dir}" {RESEG} {extra}')
  request = text_format.Parse(text, inference_pb2.ResegmentationRequest())
  request.inference.ClearField('segmentation_output_dir')
  return request


def test_listed_pairs_with_and_without_points(volumes, tmp_path):
  out_volume = f'{tmp_path}/merged.h5:labels'
  pairs = [(4, 3, None), (1, 2, (9, 11, 23))]
  decisions = run_agglomeration.run_agglomeration(
      _request(volumes, tmp_path), out_volume, (2.0, 1.0, 1.0), pairs=pairs,
      model=synthetic_ffn.NumpyModel())
  assert [(d.point.id_a, d.point.id_b, d.merge) for d in decisions] == [
      (4, 3, False), (1, 2, True)]
  # The unlisted point of (4, 3) is the contact found in the segmentation.
  assert decisions[0].point.point.x == 24 and decisions[0].point.point.y == 35
  lines = (tmp_path / run_agglomeration.DECISIONS_FILE).read_text().splitlines()
  assert [json.loads(line)['merge'] for line in lines] == [False, True]
  with h5py.File(tmp_path / 'merged.h5', 'r') as f:
    merged = f['labels'][...]
  assert set(np.unique(merged)) == {0, 1, 3, 4}
  np.testing.assert_array_equal(merged == 1, np.isin(volumes[2], [1, 2]))


def test_read_pairs(tmp_path):
  path = tmp_path / 'pairs.txt'
  path.write_text('# comment\n1,2\n\n3 4 5 6 7  # xyz point\n')
  assert run_agglomeration.read_pairs(str(path)) == [(1, 2, None), (3, 4, (7, 6, 5))]
  for bad in ('1\n', '1,1\n', '1,2,3\n', 'a,b\n', '-1,2\n', '# nothing\n'):
    path.write_text(bad)
    with pytest.raises(ValueError, match='pairs.txt'):
      run_agglomeration.read_pairs(str(path))


def test_bad_requests_fail_before_any_work(volumes, tmp_path):
  request = _request(volumes, tmp_path, 'points { id_a: 1 point { x: 23 y: 11 z: 9 } }')
  with pytest.raises(ValueError, match=r'points\[0\] has no id_b'):
    run_agglomeration.run_agglomeration(request, f'{tmp_path}/m.h5:s', (1, 1, 1),
                                        model=synthetic_ffn.NumpyModel())
  request = _request(volumes, tmp_path, 'points { id_a: 1 id_b: 2 }')
  with pytest.raises(ValueError, match='points and pairs'):
    run_agglomeration.run_agglomeration(request, f'{tmp_path}/m.h5:s', (1, 1, 1),
                                        pairs=[(1, 2, None)])
  with pytest.raises(ValueError, match='do not come within 1 voxel'):
    run_agglomeration.run_agglomeration(_request(volumes, tmp_path), f'{tmp_path}/m.h5:s',
                                        (1, 1, 1), pairs=[(1, 3, None)])
  assert not list(tmp_path.iterdir())


def test_unused_inference_fields_are_reported(volumes, tmp_path):
  request = _request(volumes, tmp_path)
  assert resegmentation.unused_inference_fields(request) == []
  request.inference.seed_policy = 'PolicyPeaks'
  request.inference.checkpoint_interval = 60
  assert resegmentation.unused_inference_fields(request) == [
      'inference.seed_policy', 'inference.checkpoint_interval']
