"""The protos keep upstream's messages, field names and numbers, and the _pb2 modules work anywhere."""

from __future__ import annotations

import filecmp
import importlib.util
import os
import subprocess
import sys

import pytest
from google.protobuf import descriptor
from google.protobuf import text_format

from conftest import REPO_ROOT
from ffn.inference import consensus_pb2
from ffn.inference import inference_pb2
from ffn.inference import resegmentation_pb2
from ffn.utils import bounding_box_pb2
from ffn.utils import vector_pb2

F = descriptor.FieldDescriptor
DOUBLE, FLOAT, INT64, UINT64, INT32, BOOL, STRING, MESSAGE, ENUM = (
    F.TYPE_DOUBLE, F.TYPE_FLOAT, F.TYPE_INT64, F.TYPE_UINT64, F.TYPE_INT32, F.TYPE_BOOL,
    F.TYPE_STRING, F.TYPE_MESSAGE, F.TYPE_ENUM)

# Message -> {field: (number, type)}, as in upstream (R2018, plus HEAD's tensorstore).
EXPECTED = {
    inference_pb2: {
        'DecoratedVolume': {'volinfo': (1, STRING), 'hdf5': (3, STRING),
                            'tensorstore': (4, STRING), 'decorator_specs': (2, STRING)},
        'MaskChannelConfig': {'channel': (1, INT32), 'min_value': (2, FLOAT),
                              'max_value': (3, FLOAT), 'values': (5, UINT64),
                              'invert': (4, BOOL)},
        'ImageMaskOptions': {'channels': (1, MESSAGE)},
        'VolumeMaskOptions': {'mask': (1, MESSAGE), 'channels': (2, MESSAGE)},
        'CoordinateExpressionOptions': {'expression': (1, STRING)},
        'MaskConfig': {'volume': (1, MESSAGE), 'image': (2, MESSAGE),
                       'coordinate_expression': (3, MESSAGE), 'invert': (4, BOOL)},
        'MaskConfigs': {'masks': (1, MESSAGE)},
        'SegmentationSource': {'directory': (1, STRING), 'threshold': (2, FLOAT),
                               'split_cc': (3, BOOL), 'min_size': (4, INT32),
                               'mask': (5, MESSAGE)},
        'InferenceOptions': {'init_activation': (1, FLOAT), 'pad_value': (2, FLOAT),
                             'move_threshold': (3, FLOAT), 'consistency_threshold': (4, FLOAT),
                             'disco_seed_threshold': (5, FLOAT),
                             'min_boundary_dist': (6, MESSAGE), 'segment_threshold': (7, FLOAT),
                             'min_segment_size': (8, INT32)},
        'SelfPredictionOptions': {'threshold': (1, FLOAT), 'orig_threshold': (2, FLOAT)},
        'AlignmentOptions': {'type': (1, ENUM), 'save_raw': (6, BOOL)},
        'InferenceRequest': {
            'image': (24, MESSAGE), 'image_mean': (2, FLOAT), 'image_stddev': (3, FLOAT),
            'reference_histogram': (4, STRING), 'histogram_masks': (26, MESSAGE),
            'masks': (5, MESSAGE), 'seed_masks': (30, MESSAGE), 'shift_mask': (6, MESSAGE),
            'shift_mask_fov': (22, MESSAGE), 'shift_mask_scale': (7, INT32),
            'shift_mask_threshold': (8, INT32), 'movement_policy_name': (9, STRING),
            'movement_policy_args': (10, STRING), 'model_name': (11, STRING),
            'model_args': (12, STRING), 'model_checkpoint_path': (13, STRING),
            'batch_size': (27, INT32), 'concurrent_requests': (28, INT32),
            'inference_options': (14, MESSAGE), 'segmentation_output_dir': (15, STRING),
            'checkpoint_interval': (16, INT32), 'seed_policy': (17, STRING),
            'seed_policy_args': (19, STRING), 'self_prediction': (18, MESSAGE),
            'alignment_options': (20, MESSAGE), 'init_segmentation': (25, MESSAGE),
            # This port's settings, numbered clear of upstream's.
            'engine': (1001, ENUM), 'precision': (1002, ENUM),
            'concurrent_objects': (1003, INT32)},
        'ResegmentationPoint': {'id_a': (1, UINT64), 'id_b': (2, UINT64), 'point': (3, MESSAGE)},
        'ResegmentationRequest': {
            'inference': (1, MESSAGE), 'points': (2, MESSAGE), 'radius': (5, MESSAGE),
            'output_directory': (6, STRING), 'subdir_digits': (7, INT32),
            'max_retry_iters': (8, INT32), 'exclusion_radius': (9, MESSAGE),
            'init_exclusion_radius': (11, MESSAGE), 'segment_recovery_fraction': (10, FLOAT),
            'terminate_early': (12, BOOL), 'analysis_radius': (13, MESSAGE)},
        'CounterValue': {'name': (1, STRING), 'value': (2, INT64)},
        'TaskCounters': {'counters': (1, MESSAGE), 'point': (2, MESSAGE),
                         'filename': (3, STRING)},
    },
    consensus_pb2: {
        'ConsensusRequest': {'segmentation1': (1, MESSAGE), 'segmentation2': (2, MESSAGE),
                             'segmentation_output_dir': (3, STRING), 'type': (4, ENUM),
                             'split_min_size': (7, INT32)},
    },
    resegmentation_pb2: {
        'EndpointResegmentationResult': {
            'id': (1, UINT64), 'start': (2, MESSAGE), 'num_voxels': (3, INT32),
            'overlaps': (4, MESSAGE), 'source': (5, MESSAGE),
            'segmentation_radius': (6, MESSAGE), 'tag': (7, STRING)},
        'PairResegmentationResult': {
            'point': (1, MESSAGE), 'id_a': (2, UINT64), 'id_b': (3, UINT64),
            'segmentation_radius': (4, MESSAGE), 'tag': (5, STRING), 'eval': (6, MESSAGE)},
    },
    bounding_box_pb2: {
        'BoundingBox': {'start': (1, MESSAGE), 'size': (2, MESSAGE),
                        'description': (3, STRING), 'object_label': (4, UINT64)},
        'BoundingBoxes': {'box': (1, MESSAGE)},
    },
    vector_pb2: {
        'Vector2d': {'x': (1, DOUBLE), 'y': (2, DOUBLE)},
        'Vector2i': {'x': (1, INT32), 'y': (2, INT32)},
        'Vector3d': {'x': (1, DOUBLE), 'y': (2, DOUBLE), 'z': (3, DOUBLE)},
        'Vector3f': {'x': (1, FLOAT), 'y': (2, FLOAT), 'z': (3, FLOAT)},
        'Vector3j': {'x': (1, INT64), 'y': (2, INT64), 'z': (3, INT64)},
        **{f'Vector{k}List': {'vectors': (1, MESSAGE)} for k in ('2d', '2i', '3d', '3f', '3j')},
    },
}

# Nested messages: {(outer, nested): {field: (number, type)}}.
NESTED = {
    ('EndpointResegmentationResult', 'OverlapInfo'): {
        'num_overlapping': (1, INT32), 'num_original': (2, INT32)},
    ('PairResegmentationResult', 'SegmentResult'): {
        'origin': (1, MESSAGE), 'num_voxels': (2, INT32), 'deleted_voxels': (3, INT32),
        'segment_a_consistency': (4, FLOAT), 'segment_b_consistency': (5, FLOAT),
        'max_edt': (6, FLOAT)},
    ('PairResegmentationResult', 'EvalResult'): {
        'radius': (1, MESSAGE), 'iou': (2, FLOAT), 'from_a': (3, MESSAGE),
        'from_b': (4, MESSAGE), 'max_edt_a': (5, FLOAT), 'max_edt_b': (6, FLOAT),
        'num_voxels_a': (7, INT32), 'num_voxels_b': (8, INT32)},
}

REPEATED = {('EndpointResegmentationResult', 'overlaps'), ('MaskChannelConfig', 'values'), ('ImageMaskOptions', 'channels'),
            ('VolumeMaskOptions', 'channels'), ('MaskConfigs', 'masks'),
            ('InferenceRequest', 'histogram_masks'), ('InferenceRequest', 'masks'),
            ('InferenceRequest', 'seed_masks'), ('ResegmentationRequest', 'points'),
            ('TaskCounters', 'counters'), ('BoundingBoxes', 'box')} | {
                (f'Vector{k}List', 'vectors') for k in ('2d', '2i', '3d', '3f', '3j')}


@pytest.mark.parametrize('module', list(EXPECTED), ids=lambda m: m.__name__)
def test_messages_fields_and_numbers(module):
  messages = module.DESCRIPTOR.message_types_by_name
  assert set(messages) == set(EXPECTED[module])
  for name, fields in EXPECTED[module].items():
    got = {f.name: (f.number, f.type) for f in messages[name].fields}
    assert got == fields, name
    for f in messages[name].fields:
      assert ((name, f.name) in REPEATED) == f.is_repeated, (name, f.name)


def test_nested_messages_fields_and_numbers():
  messages = resegmentation_pb2.DESCRIPTOR.message_types_by_name
  for (outer, name), fields in NESTED.items():
    nested = messages[outer].nested_types_by_name[name]
    assert {f.name: (f.number, f.type) for f in nested.fields} == fields, name
    assert not any(f.is_repeated for f in nested.fields), name


def test_consensus_and_resegmentation_types():
  consensus_type = consensus_pb2.ConsensusRequest.ConsensusType
  assert dict(consensus_type.items()) == {'CONSENSUS_SPLIT': 2}
  assert consensus_pb2.DESCRIPTOR.package == 'ffn'
  assert resegmentation_pb2.DESCRIPTOR.package == 'ffn'
  fields = consensus_pb2.ConsensusRequest.DESCRIPTOR.fields_by_name
  assert fields['segmentation1'].message_type.full_name == 'ffn.SegmentationSource'
  overlaps = resegmentation_pb2.EndpointResegmentationResult.DESCRIPTOR.fields_by_name['overlaps']
  assert overlaps.message_type.GetOptions().map_entry
  key, value = overlaps.message_type.fields
  assert key.type == UINT64
  assert value.message_type.full_name == 'ffn.EndpointResegmentationResult.OverlapInfo'
  result = resegmentation_pb2.PairResegmentationResult()
  assert result.eval.from_a.DESCRIPTOR.fields_by_name['origin'].message_type.full_name == (
      'ffn.proto.Vector3j')
  text = 'segmentation1 { directory: "a" } type: CONSENSUS_SPLIT split_min_size: 1000'
  request = text_format.Parse(text, consensus_pb2.ConsensusRequest())
  assert request.type == 2 and request.split_min_size == 1000


def test_packages_and_special_fields():
  assert inference_pb2.DESCRIPTOR.package == 'ffn'
  assert bounding_box_pb2.DESCRIPTOR.package == 'ffn'
  assert vector_pb2.DESCRIPTOR.package == 'ffn.proto'
  volume = inference_pb2.DecoratedVolume.DESCRIPTOR
  assert [f.name for f in volume.oneofs_by_name['volume_path'].fields] == [
      'volinfo', 'hdf5', 'tensorstore']
  mask = inference_pb2.MaskConfig.DESCRIPTOR
  assert [f.name for f in mask.oneofs_by_name['source'].fields] == [
      'volume', 'image', 'coordinate_expression']
  align_type = inference_pb2.AlignmentOptions.AlignType
  assert dict(align_type.items()) == {'UNKNOWN_ALIGNMENT': 0, 'NO_ALIGNMENT': 1}
  assert inference_pb2.AlignmentOptions().type == inference_pb2.AlignmentOptions.NO_ALIGNMENT
  request = inference_pb2.InferenceRequest()
  assert request.batch_size == 1 and request.concurrent_requests == 1
  assert inference_pb2.SelfPredictionOptions().orig_threshold == 1.0
  engine = inference_pb2.InferenceRequest.Engine
  precision = inference_pb2.InferenceRequest.Precision
  assert dict(engine.items()) == {'ENGINE_UNSPECIFIED': 0, 'TENSORFLOW': 1, 'OPENVINO': 2}
  assert dict(precision.items()) == {'PRECISION_UNSPECIFIED': 0, 'FLOAT32': 1, 'BFLOAT16': 2,
                                     'FLOAT16': 3}
  assert not request.HasField('engine') and not request.HasField('precision')
  assert inference_pb2.ResegmentationRequest().max_retry_iters == 1
  assert inference_pb2.InferenceRequest.DESCRIPTOR.fields_by_name[
      'shift_mask_fov'].message_type.full_name == 'ffn.BoundingBox'
  assert inference_pb2.InferenceOptions.DESCRIPTOR.fields_by_name[
      'min_boundary_dist'].message_type.full_name == 'ffn.proto.Vector3j'


SAMPLE_REQUEST = '''
image {
  hdf5: "third_party/neuroproof_examples/training_sample2/grayscale_maps.h5:raw"
}
image_mean: 128
image_stddev: 33
checkpoint_interval: 1800
seed_policy: "PolicyPeaks"
model_checkpoint_path: "models/fib25/model.ckpt-27465036"
model_name: "convstack_3d.ConvStack3DFFNModel"
model_args: "{\\"depth\\": 12, \\"fov_size\\": [33, 33, 33], \\"deltas\\": [8, 8, 8]}"
segmentation_output_dir: "results/fib25/training2"
inference_options {
  init_activation: 0.95
  pad_value: 0.05
  move_threshold: 0.9
  min_boundary_dist { x: 1 y: 1 z: 1}
  segment_threshold: 0.6
  min_segment_size: 1000
}
'''


def test_sample_request_text_round_trip():
  request = text_format.Parse(SAMPLE_REQUEST, inference_pb2.InferenceRequest())
  assert request.image.hdf5.endswith('grayscale_maps.h5:raw')
  assert request.image_mean == 128 and request.image_stddev == 33
  assert request.model_args == '{"depth": 12, "fov_size": [33, 33, 33], "deltas": [8, 8, 8]}'
  options = request.inference_options
  assert options.min_boundary_dist.x == 1 and options.min_segment_size == 1000
  assert abs(options.init_activation - 0.95) < 1e-7
  text = text_format.MessageToString(request)
  assert text_format.Parse(text, inference_pb2.InferenceRequest()) == request
  wire = request.SerializeToString()
  assert inference_pb2.InferenceRequest.FromString(wire) == request


def test_fresh_process_imports_from_any_directory(tmp_path):
  """The package imports from a temporary directory (installed, or via PYTHONPATH as CI sets up)."""
  env = dict(os.environ)
  if importlib.util.find_spec('ffn') is None or not _installed():
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get('PYTHONPATH')]))
  code = ('from ffn.inference import inference_pb2; from ffn.utils import bounding_box; '
          'r = inference_pb2.InferenceRequest(batch_size=3); '
          'print(r.batch_size, bounding_box.BoundingBox((0, 0, 0), (1, 2, 3)).to_proto().size.z)')
  result = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  assert result.stdout.split() == ['3', '3']


def _installed() -> bool:
  """Whether `ffn` is importable without the repository on the path."""
  result = subprocess.run([sys.executable, '-c', 'import ffn'], cwd='/',
                          env={k: v for k, v in os.environ.items() if k != 'PYTHONPATH'},
                          capture_output=True)
  return result.returncode == 0


def test_checked_in_pb2_match_regenerated(tmp_path):
  pytest.importorskip('grpc_tools.protoc')
  protos = ['ffn/utils/vector.proto', 'ffn/utils/bounding_box.proto',
            'ffn/inference/inference.proto', 'ffn/inference/consensus.proto',
            'ffn/inference/resegmentation.proto']
  result = subprocess.run(
      [sys.executable, '-m', 'grpc_tools.protoc', f'-I{REPO_ROOT}', f'--python_out={tmp_path}',
       *protos], capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  for proto in protos:
    generated = proto.replace('.proto', '_pb2.py')
    assert filecmp.cmp(tmp_path / generated, REPO_ROOT / generated, shallow=False), generated
