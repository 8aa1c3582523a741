"""Every InferenceRequest / InferenceOptions field works or fails clearly, and a test says so.

`FIELD_TESTS` maps each field of the request messages (walked from the proto
descriptors) to the test that exercises it; the walk fails on a field missing
from the table, on a table entry that is no field, and on a named test that
does not exist or never mentions its field. The tests below cover the fields
that no other module's test reaches through the Runner.
"""

from __future__ import annotations

import ast
import os
import re

from google.protobuf import text_format
import h5py
import numpy as np
import pytest

from ffn.inference import inference_pb2
from ffn.inference.io import results
from ffn.inference.request import runner as runner_lib
from ffn.utils import align

import synthetic_ffn

from conftest import REPO_ROOT

_HERE = 'tests/inference/test_request_fields.py'
_RUNNER = 'tests/inference/test_runner.py'
_CANVAS = 'tests/inference/test_canvas.py'
_MASKS = 'tests/inference/test_masks.py'
_STORAGE = 'tests/inference/test_storage.py'
_MOVEMENT = 'tests/inference/test_movement.py'
_HISTOGRAM = 'tests/inference/test_histogram_matching.py'

FIELD_TESTS = {
    # InferenceRequest
    'InferenceRequest.image': f'{_RUNNER}::test_run_saves_loads_and_is_idempotent',
    'InferenceRequest.image_mean': f'{_HERE}::test_image_is_normalised_by_mean_and_stddev',
    'InferenceRequest.image_stddev': f'{_HERE}::test_image_is_normalised_by_mean_and_stddev',
    'InferenceRequest.reference_histogram':
        f'{_HISTOGRAM}::test_contrast_shifted_volume_segments_like_the_original',
    'InferenceRequest.histogram_masks':
        f'{_HISTOGRAM}::test_histogram_masks_are_left_out_of_the_histogram',
    'InferenceRequest.masks': f'{_RUNNER}::test_masks_apply_without_a_shift_mask',
    'InferenceRequest.seed_masks': f'{_HERE}::test_seed_masks_only_keep_seeds_out',
    'InferenceRequest.shift_mask': f'{_HERE}::test_shift_mask_fields_reach_the_restrictor',
    'InferenceRequest.shift_mask_fov': f'{_HERE}::test_shift_mask_fields_reach_the_restrictor',
    'InferenceRequest.shift_mask_scale': f'{_HERE}::test_shift_mask_fields_reach_the_restrictor',
    'InferenceRequest.shift_mask_threshold':
        f'{_HERE}::test_shift_mask_fields_reach_the_restrictor',
    'InferenceRequest.movement_policy_name': f'{_RUNNER}::test_bad_requests',
    'InferenceRequest.movement_policy_args':
        f'{_MOVEMENT}::test_get_policy_fn_defaults_custom_and_errors',
    'InferenceRequest.model_name': f'{_HERE}::test_model_fields_build_the_model',
    'InferenceRequest.model_args': f'{_HERE}::test_model_fields_build_the_model',
    'InferenceRequest.engine': 'tests/inference/test_engine_settings.py::test_requested_names',
    'InferenceRequest.precision': 'tests/inference/test_engine_settings.py::test_requested_names',
    'InferenceRequest.model_checkpoint_path': f'{_HERE}::test_model_fields_build_the_model',
    'InferenceRequest.batch_size': f'{_RUNNER}::test_concurrent_batched_runs_match_sequential',
    'InferenceRequest.concurrent_requests':
        f'{_RUNNER}::test_concurrent_batched_runs_match_sequential',
    'InferenceRequest.concurrent_objects':
        'tests/inference/test_object_pool.py::test_plan_takes_concurrent_objects',
    'InferenceRequest.inference_options': f'{_HERE}::test_inference_options_must_be_probabilities',
    'InferenceRequest.segmentation_output_dir': f'{_HERE}::test_required_fields',
    'InferenceRequest.checkpoint_interval':
        'tests/inference/test_kill_resume.py::'
        'test_sigkill_and_restart_gives_the_uninterrupted_result',
    'InferenceRequest.seed_policy': f'{_RUNNER}::test_bad_requests',
    'InferenceRequest.seed_policy_args': f'{_RUNNER}::test_bad_requests',
    'InferenceRequest.self_prediction': f'{_HERE}::test_self_prediction_fails_naming_the_field',
    'InferenceRequest.alignment_options': f'{_HERE}::test_unknown_alignment_type_fails',
    'InferenceRequest.init_segmentation': f'{_HERE}::test_init_segmentation_objects_are_kept',
    # InferenceOptions
    'InferenceOptions.init_activation': f'{_HERE}::test_inference_options_must_be_probabilities',
    'InferenceOptions.pad_value': f'{_CANVAS}::test_segment_at_alone_grows_one_object',
    'InferenceOptions.move_threshold': f'{_HERE}::test_inference_options_must_be_probabilities',
    'InferenceOptions.consistency_threshold':
        f'{_CANVAS}::test_consistency_threshold_repeats_predictions',
    'InferenceOptions.disco_seed_threshold': f'{_CANVAS}::test_disconnected_seed_freezing',
    'InferenceOptions.min_boundary_dist': f'{_CANVAS}::test_min_segment_size_and_boundary_dist',
    'InferenceOptions.segment_threshold':
        f'{_HERE}::test_inference_options_must_be_probabilities',
    'InferenceOptions.min_segment_size': f'{_CANVAS}::test_min_segment_size_and_boundary_dist',
    # Nested messages.
    'DecoratedVolume.volinfo': f'{_STORAGE}::test_unsupported_volume_sources',
    'DecoratedVolume.hdf5': f'{_STORAGE}::test_hdf5_volumes',
    'DecoratedVolume.tensorstore': f'{_STORAGE}::test_tensorstore_zarr_volume',
    'DecoratedVolume.decorator_specs': f'{_HERE}::test_decorator_specs_fail_outside_volinfo',
    'MaskConfig.volume': f'{_MASKS}::test_3d_volume_mask_and_tensorstore_volume',
    'MaskConfig.image': f'{_MASKS}::test_image_range_values_and_inverts',
    'MaskConfig.coordinate_expression': f'{_MASKS}::test_coordinate_expression_uses_global_zyx',
    'MaskConfig.invert': f'{_MASKS}::test_image_range_values_and_inverts',
    'VolumeMaskOptions.mask': f'{_MASKS}::test_3d_volume_mask_and_tensorstore_volume',
    'VolumeMaskOptions.channels': f'{_MASKS}::test_4d_volume_mask_clipped_at_volume_edges',
    'ImageMaskOptions.channels': f'{_MASKS}::test_image_range_values_and_inverts',
    'MaskChannelConfig.channel': f'{_MASKS}::test_image_errors',
    'MaskChannelConfig.min_value': f'{_MASKS}::test_image_range_values_and_inverts',
    'MaskChannelConfig.max_value': f'{_MASKS}::test_image_range_values_and_inverts',
    'MaskChannelConfig.values': f'{_MASKS}::test_image_range_values_and_inverts',
    'MaskChannelConfig.invert': f'{_MASKS}::test_image_range_values_and_inverts',
    'CoordinateExpressionOptions.expression':
        f'{_MASKS}::test_coordinate_expression_uses_global_zyx',
    'BoundingBox.start': f'{_HERE}::test_shift_mask_fields_reach_the_restrictor',
    'BoundingBox.size': f'{_HERE}::test_shift_mask_fields_reach_the_restrictor',
    'BoundingBox.description': f'{_HERE}::test_shift_mask_fov_description_and_object_label',
    'BoundingBox.object_label': f'{_HERE}::test_shift_mask_fov_description_and_object_label',
    'Vector3j.x': f'{_CANVAS}::test_min_segment_size_and_boundary_dist',
    'Vector3j.y': f'{_CANVAS}::test_min_segment_size_and_boundary_dist',
    'Vector3j.z': f'{_CANVAS}::test_min_segment_size_and_boundary_dist',
    'SelfPredictionOptions.threshold': f'{_HERE}::test_self_prediction_fails_naming_the_field',
    'SelfPredictionOptions.orig_threshold':
        f'{_HERE}::test_self_prediction_fails_naming_the_field',
    'AlignmentOptions.type': f'{_HERE}::test_unknown_alignment_type_fails',
    'AlignmentOptions.save_raw': f'{_HERE}::test_save_raw_writes_the_aligned_image',
}


def _request_fields() -> set[str]:
  """`Message.field` for every field of the request messages and the messages they use."""
  found, todo, seen = set(), [inference_pb2.InferenceRequest.DESCRIPTOR,
                              inference_pb2.InferenceOptions.DESCRIPTOR], set()
  while todo:
    message = todo.pop()
    if message.full_name in seen:
      continue
    seen.add(message.full_name)
    for field in message.fields:
      found.add(f'{message.name}.{field.name}')
      if field.message_type is not None:
        todo.append(field.message_type)
  return found


def _test_functions(path: str) -> dict[str, str]:
  """Source text (decorators included) of each module-level test function of a file."""
  text = (REPO_ROOT / path).read_text()
  lines = text.splitlines()
  out = {}
  for node in ast.parse(text).body:
    if isinstance(node, ast.FunctionDef) and node.name.startswith('test'):
      first = min([node.lineno] + [d.lineno for d in node.decorator_list])
      out[node.name] = '\n'.join(lines[first - 1:node.end_lineno])
  return out


def test_every_request_field_is_covered_by_a_test():
  fields = _request_fields()
  assert sorted(fields - FIELD_TESTS.keys()) == [], 'fields no test covers'
  assert sorted(FIELD_TESTS.keys() - fields) == [], 'table entries that are no field'


@pytest.mark.parametrize('field', sorted(FIELD_TESTS))
def test_named_test_exists_and_mentions_its_field(field):
  path, name = FIELD_TESTS[field].split('::')
  functions = _test_functions(path)
  assert name in functions, f'{FIELD_TESTS[field]} does not exist'
  module_text = (REPO_ROOT / path).read_text()
  short = field.split('.')[1]
  # The field is named in the test itself, or in the module's request helpers.
  assert (re.search(rf'\b{short}\b', functions[name])
          or re.search(rf'\b{short}\b', module_text)), f'{name} never mentions {short}'


# -- Runner-level tests of fields no other module reaches --------------------------------


@pytest.fixture(scope='module')
def volume(tmp_path_factory):
  """(image spec, labels, root directory) of the synthetic blob volume."""
  root = tmp_path_factory.mktemp('fields')
  image, labels = synthetic_ffn.blob_volume()
  return synthetic_ffn.write_h5(root / 'image.h5', image), labels, root


def _request(spec: str, out_dir, **extra) -> inference_pb2.InferenceRequest:
  text = synthetic_ffn.request_text(spec, 'unused', str(out_dir), seed_policy='"PolicyGrid3d"',
                                    seed_policy_args=r'"{\"step\": 4, \"offsets\": [2]}"',
                                    **extra)
  return text_format.Parse(text, inference_pb2.InferenceRequest())


def _run(request, shape):
  runner = runner_lib.Runner()
  runner.start(request, model=synthetic_ffn.NumpyModel())
  try:
    return runner.run((0, 0, 0), shape)
  finally:
    runner.stop_executor()


def test_image_is_normalised_by_mean_and_stddev(volume, tmp_path):
  spec, labels, _ = volume
  request = _request(spec, tmp_path)
  request.image_mean, request.image_stddev = 100.0, 25.0
  runner = runner_lib.Runner()
  runner.start(request, model=synthetic_ffn.NumpyModel())
  try:
    canvas, _ = runner.make_canvas((0, 0, 0), labels.shape)
  finally:
    runner.stop_executor()
  raw = np.where(labels > 0, synthetic_ffn.BRIGHT, synthetic_ffn.DARK).astype(np.float32)
  np.testing.assert_array_equal(canvas.image, (raw - np.float32(100)) / np.float32(25))


def test_seed_masks_only_keep_seeds_out(volume, tmp_path):
  spec, labels, _ = volume
  canvas = _run(_request(spec, tmp_path, seed_masks='{ coordinate_expression { '
                         'expression: "x >= 12" } }'), labels.shape)
  seg = canvas.segmentation
  assert all(origin.start_zyx[2] < 12 for origin in canvas.origins.values())
  # Blob 1 (x 4-19) is seeded left of x = 12 and grows past it: the FOV may move there.
  right = labels[:, :, 12:] == 1
  assert np.mean(seg[:, :, 12:][right] > 0) > 0.5
  # Blob 2 (x 26-43) has no seed.
  assert not np.any(seg[labels == 2] > 0)


def test_shift_mask_fields_reach_the_restrictor(volume, tmp_path):
  spec, labels, root = volume
  shape = labels.shape
  shift = np.zeros((2, shape[0], shape[1] // 2, shape[2] // 2), np.float32)
  shift[0, 10, 5, 6] = 7.0  # Full-resolution (z=10, y=10..11, x=12..13).
  with h5py.File(root / 'shift.h5', 'w') as f:
    f.create_dataset('shift', data=shift)
  request = _request(spec, tmp_path, shift_mask=f'{{ hdf5: "{root}/shift.h5:shift" }}',
                     shift_mask_scale=2, shift_mask_threshold=5,
                     shift_mask_fov='{ start { x: 0 y: 0 z: 0 } size { x: 1 y: 1 z: 1 } }')
  runner = runner_lib.Runner()
  runner.start(request, model=synthetic_ffn.NumpyModel())
  try:
    canvas, _ = runner.make_canvas((0, 0, 0), shape)
  finally:
    runner.stop_executor()
  restrictor = canvas.restrictor
  assert not restrictor.is_valid_pos((10, 10, 12)) and not restrictor.is_valid_pos((10, 11, 13))
  assert restrictor.is_valid_pos((10, 12, 12)) and restrictor.is_valid_pos((9, 10, 12))

  request.shift_mask_threshold = 8  # Above the shift: nothing is excluded.
  runner.prepare(request)
  restrictor = runner.inputs.restrictor((0, 0, 0), shape, None,
                                        align.Alignment((0, 0, 0), shape), (9, 7, 5))
  assert restrictor.is_valid_pos((10, 10, 12))


def test_shift_mask_fov_description_and_object_label(volume, tmp_path):
  spec, labels, root = volume
  with h5py.File(root / 'shift0.h5', 'w') as f:
    f.create_dataset('shift', data=np.zeros((2,) + labels.shape, np.float32))
  request = _request(spec, tmp_path, shift_mask=f'{{ hdf5: "{root}/shift0.h5:shift" }}',
                     shift_mask_fov='{ start { x: 0 y: 0 z: 0 } size { x: 1 y: 1 z: 1 } '
                     'description: "the FOV centre" }')
  runner = runner_lib.Runner()
  runner.prepare(request)  # A description is a note for people: accepted.
  request.shift_mask_fov.object_label = 3
  with pytest.raises(ValueError, match='shift_mask_fov.object_label'):
    runner.prepare(request)


@pytest.mark.parametrize('field', ['shift_mask_scale: 2', 'shift_mask_threshold: 4',
                                   'shift_mask_fov { size { x: 1 y: 1 z: 1 } }'])
def test_shift_mask_settings_without_shift_mask_fail(volume, tmp_path, field):
  request = _request(volume[0], tmp_path)
  text_format.Merge(field, request)
  with pytest.raises(ValueError, match=field.split()[0].rstrip(':')):
    runner_lib.Runner().prepare(request)


def test_init_segmentation_objects_are_kept(volume, tmp_path):
  spec, labels, root = volume
  init = np.zeros(labels.shape, np.uint64)
  init[labels == 2] = 1234
  with h5py.File(root / 'init.h5', 'w') as f:
    f.create_dataset('seg', data=init)
  canvas = _run(_request(spec, tmp_path, init_segmentation=f'{{ hdf5: "{root}/init.h5:seg" }}'),
                labels.shape)
  seg = canvas.segmentation
  blob2 = canvas.local_id(1234)
  assert np.all(seg[labels == 2] == blob2)
  # New objects start after the initial ones and never overwrite them.
  assert blob2 not in canvas.origins and np.mean(seg[labels == 1] > 0) > 0.9


def test_unknown_alignment_type_fails(volume, tmp_path):
  request = _request(volume[0], tmp_path, alignment_options='{ type: UNKNOWN_ALIGNMENT }')
  with pytest.raises(NotImplementedError, match='alignment_options.type UNKNOWN_ALIGNMENT'):
    runner_lib.Runner().prepare(request)


def test_save_raw_writes_the_aligned_image(volume, tmp_path):
  spec, labels, _ = volume
  canvas = _run(_request(spec, tmp_path, alignment_options='{ save_raw: true }'), labels.shape)
  with np.load(results.subvolume_path(str(tmp_path), (0, 0, 0), 'align')) as data:
    np.testing.assert_array_equal(data['im'], canvas.image)


def test_self_prediction_fails_naming_the_field(volume, tmp_path):
  request = _request(volume[0], tmp_path,
                     self_prediction='{ threshold: 0.5 orig_threshold: 0.9 }')
  with pytest.raises(NotImplementedError, match='InferenceRequest.self_prediction'):
    runner_lib.Runner().prepare(request)


def test_decorator_specs_fail_outside_volinfo(volume, tmp_path):
  request = _request(volume[0], tmp_path)
  request.image.decorator_specs = '[{"decorator": "Crop"}]'
  with pytest.raises(ValueError, match='decorator_specs'):
    runner_lib.Runner().prepare(request)


@pytest.mark.parametrize('field', ['init_activation', 'pad_value', 'move_threshold',
                                   'segment_threshold'])
def test_inference_options_must_be_probabilities(volume, tmp_path, field):
  request = _request(volume[0], tmp_path)
  setattr(request.inference_options, field, 1.5)
  with pytest.raises(ValueError, match=f'inference_options.{field} is 1.5'):
    runner_lib.Runner().prepare(request)


def test_required_fields(volume, tmp_path):
  request = _request(volume[0], tmp_path)
  request.ClearField('segmentation_output_dir')
  with pytest.raises(ValueError, match='segmentation_output_dir must be set'):
    runner_lib.Runner().prepare(request)
  request = _request(volume[0], tmp_path)
  request.ClearField('image')
  with pytest.raises(ValueError, match='InferenceRequest.image must name a volume'):
    runner_lib.Runner().prepare(request)
  assert not os.listdir(tmp_path)


def test_model_fields_build_the_model(tmp_path):
  image, labels = synthetic_ffn.blob_volume()
  spec = synthetic_ffn.write_h5(tmp_path / 'image.h5', image)
  ckpt = synthetic_ffn.write_tf_checkpoint(tmp_path)
  text = synthetic_ffn.request_text(spec, ckpt, str(tmp_path / 'out'))
  request = text_format.Parse(text, inference_pb2.InferenceRequest())
  assert request.model_name and request.model_args and request.model_checkpoint_path
  runner = runner_lib.Runner()
  runner.start(request)
  try:
    assert runner.model.info.input_image_size == synthetic_ffn.FOV_XYZ
    logits = runner.model.predict_logits(
        np.full((1,) + synthetic_ffn.FOV_XYZ[::-1] + (1,), 1.0, np.float32),
        np.zeros((1,) + synthetic_ffn.FOV_XYZ[::-1] + (1,), np.float32))
    assert np.all(np.asarray(logits) > 0)  # The checkpoint's weights, not fresh ones.
  finally:
    runner.stop_executor()
  for field, message in (('model_name', 'model_name must be set'),
                         ('model_checkpoint_path', 'model_checkpoint_path must be set')):
    bad = inference_pb2.InferenceRequest()
    bad.CopyFrom(request)
    bad.ClearField(field)
    with pytest.raises(ValueError, match=message):
      runner_lib.Runner().start(bad)


@pytest.mark.parametrize('field,value,match', [
    ('image_mean', float('nan'), 'image_mean is nan'),
    ('image_stddev', float('inf'), r'image_stddev is inf; expected a finite number > 0'),
    ('image_stddev', -1, 'image_stddev is -1'),
    ('concurrent_requests', -1, 'concurrent_requests is -1'),
    ('inference_options.disco_seed_threshold', 2, 'disco_seed_threshold is 2'),
    ('inference_options.min_segment_size', -1, 'min_segment_size is -1'),
])
def test_every_number_is_finite_and_in_range(volume, tmp_path, field, value, match):
  request = _request(volume[0], tmp_path)
  parent, _, name = field.rpartition('.')
  setattr(getattr(request, parent) if parent else request, name, value)
  with pytest.raises(ValueError, match=match):
    runner_lib.Runner().prepare(request)


@pytest.mark.parametrize('seed_policy,args,match', [
    ('PolicyGrid3d', '{"step": 4, "ofsets": [2]}', "has 'ofsets', which PolicyGrid3d does not"),
    ('PolicyGrid3d', '{"step": 4.5}', "'step' is 4.5; PolicyGrid3d expects a int"),
    ('PolicyPeaks', '{"subvol_size": [1, 2, 3]}', "sets 'subvol_size', which the runner sets"),
    ('ReverseCoords', '{"policy_to_reverse": "PolicyGrid3d", "stp": 1}', "'stp'"),
    ('SequentialPolicies', '{"policies": [["PolicyMax", {"x": 1}]]}',
     r"policies\[0\] has 'x', which PolicyMax does not take"),
    ('PolicyInvertOrigins', '{}', 'needs "segmentation_dir"'),
])
def test_seed_policy_arguments_fit_the_policy(volume, tmp_path, seed_policy, args, match):
  request = _request(volume[0], tmp_path)
  request.seed_policy, request.seed_policy_args = seed_policy, args
  with pytest.raises(ValueError, match=match):
    runner_lib.Runner().prepare(request)


def test_init_segmentation_must_cover_the_image(volume, tmp_path):
  spec, labels, root = volume
  for name, seg, match in (('short', labels[:, :, :40], r'has shape \(40, 40, 20\)'),
                           ('float', labels.astype(np.float32), 'is float32')):
    seg_spec = synthetic_ffn.write_h5(root / f'init_{name}.h5', seg, 'seg')
    request = _request(spec, tmp_path)
    request.init_segmentation.hdf5 = seg_spec
    runner = runner_lib.Runner()
    runner.prepare(request)
    with pytest.raises(ValueError, match=match):
      runner.check_box((0, 0, 0), labels.shape)


def test_non_finite_image_is_refused_naming_the_voxel(tmp_path):
  image, _ = synthetic_ffn.blob_volume()
  image = image.astype(np.float32)
  image[4, 5, 6] = np.nan
  spec = synthetic_ffn.write_h5(tmp_path / 'nan.h5', image)
  runner = runner_lib.Runner()
  runner.start(_request(spec, tmp_path / 'out'), model=synthetic_ffn.NumpyModel())
  try:
    with pytest.raises(ValueError, match=r'1 NaN or infinite voxels .* first at \(6, 5, 4\)'):
      runner.run((0, 0, 0), image.shape)
  finally:
    runner.stop_executor()
  assert not os.path.exists(tmp_path / 'out' / '0')


def test_checkpoint_records_and_checks_its_settings(volume, tmp_path):
  spec, labels, _ = volume
  request = _request(spec, tmp_path)
  runner = runner_lib.Runner()
  runner.start(request, model=synthetic_ffn.NumpyModel())
  try:
    canvas, _ = runner.make_canvas((0, 0, 0), labels.shape)
    path = results.checkpoint_path(str(tmp_path), (0, 0, 0))
    os.makedirs(os.path.dirname(path))
    canvas.save_checkpoint(path)
  finally:
    runner.stop_executor()
  from ffn.inference.growing import checkpoint_file as canvas_checkpoint  # pylint: disable=g-import-not-at-top
  assert canvas_checkpoint.saved_request(path) == request.SerializeToString()
  changed = _request(spec, tmp_path)
  changed.inference_options.segment_threshold = 0.7
  runner = runner_lib.Runner()
  runner.start(changed, model=synthetic_ffn.NumpyModel())
  try:
    with pytest.raises(ValueError, match='unfinished run with other settings .*inference_options'):
      runner.run((0, 0, 0), labels.shape)
  finally:
    runner.stop_executor()
  # This port reads its own checkpoints as unfinished results.
  seg, origins = results.load_segmentation(str(tmp_path), (0, 0, 0), allow_cpoint=True)
  assert seg.shape == labels.shape and origins == {}
