"""Tests of the Runner with a hand-built TF model on a synthetic HDF5 volume."""

from __future__ import annotations

import os

from google.protobuf import text_format
import numpy as np
import pytest

from ffn.inference import inference_pb2
from ffn.inference.io import results
from ffn.inference.request import runner as runner_lib
from ffn.utils import bounding_box
from ffn.utils import errors

import synthetic_ffn


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  """(image spec, checkpoint prefix, labels) shared by the tests of this module."""
  return synthetic_ffn.write_blob_setup(tmp_path_factory.mktemp('runner'))


def _request(setup, out_dir, **extra):
  spec, ckpt, _ = setup
  text = synthetic_ffn.request_text(spec, ckpt, str(out_dir), seed_policy='"PolicyGrid3d"',
                                    seed_policy_args=r'"{\"step\": 4, \"offsets\": [2]}"',
                                    **extra)
  return text_format.Parse(text, inference_pb2.InferenceRequest())


def test_run_saves_loads_and_is_idempotent(setup, tmp_path):
  _, _, labels = setup
  runner = runner_lib.Runner()
  runner.start(_request(setup, tmp_path))
  try:
    canvas = runner.run((0, 0, 0), labels.shape)
    assert canvas is not None and canvas.origins
    seg_path = results.segmentation_path(str(tmp_path), (0, 0, 0))
    assert os.path.exists(results.object_prob_path(str(tmp_path), (0, 0, 0)))
    assert not os.path.exists(results.checkpoint_path(str(tmp_path), (0, 0, 0)))
    seg, origins = results.load_segmentation(str(tmp_path), (0, 0, 0), split_cc=False)
    assert seg.dtype == np.uint64 and seg.shape == labels.shape
    assert set(origins) == set(np.unique(seg)) - {0}
    for sid in origins:
      assert len(np.unique(labels[seg == sid])) == 1
    with np.load(seg_path, allow_pickle=True) as data:
      request = inference_pb2.InferenceRequest.FromString(data['request'].tobytes())
      assert request.seed_policy == 'PolicyGrid3d'
      assert 'counters' in data.files and 'overlaps' in data.files

    mtime = os.path.getmtime(seg_path)
    assert runner.run((0, 0, 0), labels.shape) is None
    assert os.path.getmtime(seg_path) == mtime
  finally:
    runner.stop_executor()


def test_masks_apply_without_a_shift_mask(setup, tmp_path):
  _, _, labels = setup
  runner = runner_lib.Runner()
  runner.start(_request(setup, tmp_path,
                        masks='{ coordinate_expression { expression: "x >= 24" } }'))
  try:
    canvas = runner.run((0, 0, 0), labels.shape)
  finally:
    runner.stop_executor()
  seg = canvas.segmentation
  assert np.any(seg[:, :, :24] > 0)
  # No seed or FOV centre in the masked half, so blob 2 (x 26-44) is never segmented.
  assert not np.any(seg[labels == 2] > 0)


@pytest.mark.parametrize('corner,size', [((4, -6, 10), (20, 30, 30)),   # y < 0
                                         ((4, 0, 10), (20, 30, 40)),    # x beyond 48
                                         ((1, 0, 0), (20, 40, 48))])    # z beyond 20
def test_box_reaching_beyond_the_image_is_refused(setup, tmp_path, corner, size):
  runner = runner_lib.Runner()
  runner.start(_request(setup, tmp_path))
  try:
    with pytest.raises(errors.FFNError, match=r'reaches beyond the image volume of size '
                       r'\(48, 40, 20\) \(xyz\)') as caught:
      runner.run(corner, size)
  finally:
    runner.stop_executor()
  assert str(tuple(corner[::-1])) in str(caught.value)  # The box is named in xyz.
  assert not list(tmp_path.rglob('*.npz')) and not list(tmp_path.rglob('*.lock'))


def test_box_smaller_than_the_fov_is_refused(setup, tmp_path):
  runner = runner_lib.Runner()
  runner.start(_request(setup, tmp_path))
  try:
    # The tiny model's FOV is 9, 7, 5 (xyz): 8 along x is one short.
    with pytest.raises(errors.FFNError, match=r'size \(8, 7, 5\) \(xyz\) is smaller than the '
                       r"model's field of view \(9, 7, 5\)"):
      runner.run((0, 0, 0), (5, 7, 8))
    assert runner.run((0, 0, 0), (5, 7, 9)) is not None
  finally:
    runner.stop_executor()


def test_concurrent_batched_runs_match_sequential(setup, tmp_path):
  boxes = [((0, 0, 0), (20, 40, 24)), ((0, 0, 24), (20, 40, 24))]
  segmentations = {}
  for name, extra in (('seq', {}), ('par', {'batch_size': 2, 'concurrent_requests': 2})):
    runner = runner_lib.Runner()
    runner.start(_request(setup, tmp_path / name, **extra))
    try:
      if name == 'par':
        assert runner.executor.batch_size == 2
      runner.run_many(boxes)
    finally:
      runner.stop_executor()
    segmentations[name] = [results.load_segmentation(str(tmp_path / name), c, split_cc=False)[0]
                     for c, _ in boxes]
    if name == 'par':
      assert runner.counters['executor-batch-fovs'].value > 0
  for a, b in zip(segmentations['seq'], segmentations['par']):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('field,value,message', [
    ('seed_policy', '"PolicyNope"', 'seed_policy'),
    ('movement_policy_name', '"NoSuchMovement"', 'NoSuchMovement'),
    ('seed_policy_args', '"{oops"', 'seed_policy_args'),
    ('image_stddev', '0', 'image_stddev'),
])
def test_bad_requests(setup, tmp_path, field, value, message):
  text = synthetic_ffn.request_text(setup[0], setup[1], str(tmp_path))
  text = '\n'.join(l for l in text.splitlines() if not l.startswith(field + ':'))
  request = text_format.Parse(text + f'\n{field}: {value}', inference_pb2.InferenceRequest())
  runner = runner_lib.Runner()
  with pytest.raises(ValueError, match=message):
    runner.start(request)
  runner.stop_executor()
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize('corner,size', [((0, 0, 0), (0, 10, 10)),
                                         ((0, 0, 100), (5, 5, 5)),
                                         ((-10, 0, 0), (10, 5, 5))])
def test_bad_boxes(setup, tmp_path, corner, size):
  runner = runner_lib.Runner()
  runner.start(_request(setup, tmp_path))
  try:
    with pytest.raises(ValueError, match='bounding box'):
      runner.run(corner, size)
  finally:
    runner.stop_executor()
  assert not os.listdir(tmp_path)


def test_channels_last_image_gives_the_same_segmentation(setup, tmp_path):
  spec, ckpt, labels = setup
  image, _ = synthetic_ffn.blob_volume()
  spec_zyxc = synthetic_ffn.write_h5(tmp_path / 'image_zyxc.h5', image[..., np.newaxis])
  results = []
  for name, image_spec in (('zyx', spec), ('zyxc', spec_zyxc)):
    text = synthetic_ffn.request_text(image_spec, ckpt, str(tmp_path / name),
                                      seed_policy='"PolicyGrid3d"',
                                      seed_policy_args=r'"{\"step\": 4, \"offsets\": [2]}"')
    runner = runner_lib.Runner()
    runner.start(text_format.Parse(text, inference_pb2.InferenceRequest()))
    try:
      results.append(runner.run((0, 0, 0), labels.shape).segmentation.copy())
    finally:
      runner.stop_executor()
  assert np.any(results[0] > 0)
  np.testing.assert_array_equal(results[0], results[1])


def test_finished_result_with_other_settings_needs_consent(setup, tmp_path):
  _, _, labels = setup
  runner = runner_lib.Runner()
  runner.start(_request(setup, tmp_path))
  try:
    runner.run((0, 0, 0), labels.shape)
  finally:
    runner.stop_executor()
  changed = _request(setup, tmp_path)
  changed.inference_options.segment_threshold = 0.7
  changed.batch_size = 3  # Not a result setting: never reported.
  box = bounding_box.BoundingBox.from_zyx((0, 0, 0), labels.shape)
  with runner_lib.Runner(changed, model=synthetic_ffn.NumpyModel()) as runner:
    with pytest.raises(ValueError, match=r'other settings \(differing: inference_options\)'):
      runner.segment(box)
  with runner_lib.Runner(changed, model=synthetic_ffn.NumpyModel(),
                         reuse_mismatched_results=True) as runner:
    assert runner.segment(box) is None
