"""The InferenceRequest as a typed plan, read and checked once, at the Runner.

The growing code and the movement policies get plain values from here (thresholds as
float32 logits, distances zyx, classes resolved); they never see the proto.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional

import numpy as np

from ffn.inference import inference_pb2
from ffn.inference.engines import registry
from ffn.inference.engines import settings as engine_settings
from ffn.inference.policies import movement
from ffn.inference.policies import seed
from ffn.inference.policies import seed_base
from ffn.utils import axes
from ffn.utils import bounding_box
from ffn.utils import checks
from ffn.utils import errors
from ffn.utils import probability
from ffn.utils import resolve

# The InferenceOptions given as probabilities and used as logits.
_PROBABILITY_OPTIONS = ('init_activation', 'pad_value', 'move_threshold', 'segment_threshold')


@dataclasses.dataclass(frozen=True)
class CanvasOptions:
  """InferenceOptions as the Canvas uses them: thresholds as float32 logits, distances zyx."""
  init_activation: np.float32
  pad_value: np.float32
  move_threshold: np.float32
  segment_threshold: np.float32
  min_boundary_dist: tuple[int, int, int]
  min_segment_size: int
  consistency_threshold: float
  disco_seed_threshold: float

  @classmethod
  def from_proto(cls, options: inference_pb2.InferenceOptions) -> CanvasOptions:
    """The options of an InferenceOptions proto (thresholds given as probabilities)."""
    mbd = options.min_boundary_dist
    logits = {name: probability.logit_float32(getattr(options, name))
              for name in _PROBABILITY_OPTIONS}
    return cls(min_boundary_dist=(int(mbd.z), int(mbd.y), int(mbd.x)),
               min_segment_size=int(options.min_segment_size),
               consistency_threshold=float(options.consistency_threshold),
               disco_seed_threshold=float(options.disco_seed_threshold), **logits)


@dataclasses.dataclass(frozen=True)
class PolicyPlan:
  """A policy class resolved by name and the keyword arguments the request gives it."""
  cls: type
  kwargs: Mapping[str, Any]


def movement_policy(request: inference_pb2.InferenceRequest) -> PolicyPlan:
  """The movement policy the request names (default FaceMaxMovementPolicy) and its arguments."""
  cls = resolve.resolve_class(request.movement_policy_name or 'FaceMaxMovementPolicy',
                              movement, movement.BaseMovementPolicy,
                              'InferenceRequest.movement_policy_name')
  field = 'InferenceRequest.movement_policy_args'
  kwargs = resolve.parse_json_object(request.movement_policy_args, field)
  cls.check_arguments(kwargs, field)
  return PolicyPlan(cls, kwargs)


def seed_policy(request: inference_pb2.InferenceRequest) -> PolicyPlan:
  """The seed policy the request names (default PolicyPeaks) and its arguments."""
  cls = resolve.resolve_class(request.seed_policy or 'PolicyPeaks', seed,
                              seed.BaseSeedPolicy, 'InferenceRequest.seed_policy')
  field = 'InferenceRequest.seed_policy_args'
  kwargs = resolve.parse_json_object(request.seed_policy_args, field)
  cls.check_arguments(kwargs, field)
  return PolicyPlan(cls, kwargs)


def movement_policy_fn(policy: PolicyPlan, model_info, move_threshold: float
                       ) -> Callable[[Any], movement.BaseMovementPolicy]:
  """grower -> movement policy; deltas default to the model's, the threshold to `move_threshold`.

  `model_info` is anything with an xyz `deltas` attribute; `move_threshold` is a logit.
  """
  kwargs = dict(policy.kwargs)
  kwargs.setdefault('deltas', tuple(int(d) for d in axes.zyx(model_info.deltas)))
  kwargs.setdefault('score_threshold', float(move_threshold))
  return lambda grower: policy.cls(grower, **kwargs)


def get_policy_fn(request: inference_pb2.InferenceRequest, model_info
                  ) -> Callable[[Any], movement.BaseMovementPolicy]:
  """grower -> movement policy, as an InferenceRequest configures it (upstream's helper)."""
  threshold = CanvasOptions.from_proto(request.inference_options).move_threshold
  return movement_policy_fn(movement_policy(request), model_info, threshold)


def _optional_volume(request: inference_pb2.InferenceRequest, field: str
                     ) -> Optional[inference_pb2.DecoratedVolume]:
  volume = getattr(request, field)
  return volume if volume.WhichOneof('volume_path') is not None else None


@dataclasses.dataclass(frozen=True)
class InferencePlan:
  """Everything the Runner needs from an InferenceRequest, checked, in the units it uses."""
  output_dir: str
  image: inference_pb2.DecoratedVolume
  image_mean: np.float32
  image_stddev: np.float32
  reference_histogram: str
  histogram_masks: tuple[inference_pb2.MaskConfig, ...]
  init_segmentation: Optional[inference_pb2.DecoratedVolume]
  masks: tuple[inference_pb2.MaskConfig, ...]
  seed_masks: tuple[inference_pb2.MaskConfig, ...]
  shift_mask: Optional[inference_pb2.DecoratedVolume]
  shift_mask_scale: int
  shift_mask_fov: Optional[bounding_box.BoundingBox]
  shift_mask_threshold: int
  canvas_options: CanvasOptions
  seed_policy: PolicyPlan
  movement_policy: PolicyPlan
  model_name: str
  model_args: str
  model_checkpoint_path: str
  batch_size: int
  concurrent_requests: int
  checkpoint_interval_sec: float
  save_raw_image: bool
  # What the request asks to run the model on (see engine_settings); upstream's
  # requests, which do not say, run TensorFlow in float32.
  engine: str = 'tensorflow'
  precision: str = 'float32'
  # Objects grown at once per subvolume (speculatively; the result is that of 1).
  concurrent_objects: int = 1

  def movement_policy_fn(self, model_info) -> Callable[[Any], movement.BaseMovementPolicy]:
    """grower -> movement policy, with the model's deltas unless the request sets them."""
    return movement_policy_fn(self.movement_policy, model_info,
                              self.canvas_options.move_threshold)


def _check_unused_settings(request: inference_pb2.InferenceRequest) -> None:
  """Fails on fields that would have no effect, or whose effect this port cannot give."""
  if request.histogram_masks and not request.reference_histogram:
    raise errors.FFNError('InferenceRequest.histogram_masks is set but reference_histogram is not; '
                     'the masks only exclude voxels from histogram matching')
  if request.shift_mask.WhichOneof('volume_path') is None:
    # A setting left at its default (0) changes nothing either way.
    for field in ('shift_mask_fov', 'shift_mask_scale', 'shift_mask_threshold'):
      if request.HasField(field) and (field == 'shift_mask_fov' or getattr(request, field)):
        raise errors.FFNError(f'InferenceRequest.{field} is set but shift_mask is not; '
                         'it only applies to a shift_mask volume')
  elif request.shift_mask_fov.HasField('object_label'):
    raise errors.FFNError('InferenceRequest.shift_mask_fov.object_label has no meaning for the '
                     'shift mask window (only start and size do); remove it')
  if request.HasField('self_prediction'):
    # Upstream halts on a `self_prediction` output of the model, which none of its
    # models (nor ours) has: such a request fails there too, with an AttributeError.
    raise errors.UnsupportedError(
        'InferenceRequest.self_prediction is not supported: it halts on a "self_prediction" '
        'output of the network, which no model here (nor any released upstream model) '
        'computes; remove the field')


# The numeric fields of a request and their allowed values (0 leaves the
# counts and intervals at their defaults).
_REQUEST_NUMBERS = {
    'image_mean': checks.ANY,
    'image_stddev': checks.POSITIVE,
    'batch_size': checks.NON_NEGATIVE_INT,
    'concurrent_requests': checks.NON_NEGATIVE_INT,
    'checkpoint_interval': checks.NON_NEGATIVE_INT,
    'shift_mask_scale': checks.NON_NEGATIVE_INT,
    'shift_mask_threshold': checks.NON_NEGATIVE_INT,
}
_OPTION_NUMBERS = {
    **{name: checks.PROBABILITY for name in _PROBABILITY_OPTIONS},
    # The mean change of probability between repeated predictions; 0 predicts once.
    'consistency_threshold': checks.Range(0, 1),
    # The active fraction of a FOV above which background is frozen; negative: never.
    'disco_seed_threshold': checks.Range(high=1),
    'min_segment_size': checks.NON_NEGATIVE_INT,
}


def _check_masks(masks, field: str) -> None:
  """Raises FFNError for a mask channel whose settings are not finite numbers in range."""
  for i, mask in enumerate(masks):
    source = mask.image if mask.HasField('image') else mask.volume
    for j, channel in enumerate(getattr(source, 'channels', ())):
      where = f'{field}[{i}] channels[{j}]'
      checks.check_number(channel.channel, f'{where}.channel', checks.NON_NEGATIVE_INT)
      if not channel.values:
        checks.check_number(channel.min_value, f'{where}.min_value')
        checks.check_number(channel.max_value, f'{where}.max_value')


def _check_numbers(request: inference_pb2.InferenceRequest) -> None:
  """Raises FFNError naming the first numeric field that is not finite and in its range."""
  for name, valid in _REQUEST_NUMBERS.items():
    checks.check_number(getattr(request, name), f'InferenceRequest.{name}', valid)
  options = request.inference_options
  for name, valid in _OPTION_NUMBERS.items():
    checks.check_number(getattr(options, name), f'InferenceRequest.inference_options.{name}',
                        valid)
  mbd = options.min_boundary_dist
  checks.check_numbers((mbd.x, mbd.y, mbd.z), 'InferenceRequest.inference_options.'
                       'min_boundary_dist (x, y, z)', checks.NON_NEGATIVE_INT)
  if request.HasField('shift_mask_fov') and min(
      (request.shift_mask_fov.size.x, request.shift_mask_fov.size.y,
       request.shift_mask_fov.size.z)) <= 0:
    raise errors.FFNError('InferenceRequest.shift_mask_fov size must be positive on every axis')
  for field in ('masks', 'seed_masks', 'histogram_masks'):
    _check_masks(getattr(request, field), f'InferenceRequest.{field}')


def _check_request(request: inference_pb2.InferenceRequest) -> None:
  """Raises FFNError (UnsupportedError for what this port cannot do) naming a bad field."""
  if not request.segmentation_output_dir:
    raise errors.FFNError('InferenceRequest.segmentation_output_dir must be set')
  if request.image.WhichOneof('volume_path') is None:
    raise errors.FFNError('InferenceRequest.image must name a volume '
                     '(hdf5: "file.h5:dataset" or tensorstore: JSON spec)')
  if request.alignment_options.type not in (inference_pb2.AlignmentOptions.NO_ALIGNMENT,):
    name = inference_pb2.AlignmentOptions.AlignType.Name(request.alignment_options.type)
    raise errors.UnsupportedError(f'InferenceRequest.alignment_options.type {name} is not '
                              'supported; only NO_ALIGNMENT')
  _check_unused_settings(request)
  _check_numbers(request)


def _concurrent_objects(request: inference_pb2.InferenceRequest, batch_size: int,
                        policy: PolicyPlan, engine: str) -> int:
  """InferenceRequest.concurrent_objects (1 when unset), checked against what it needs."""
  value = int(request.concurrent_objects)
  if value < 0:
    raise errors.FFNError(f'InferenceRequest.concurrent_objects is {value}; expected 0 or more '
                     '(0 and 1: one object at a time)')
  if value <= 1:
    return 1
  if not registry.module(engine).CONCURRENT_CALLS:
    able = [n.upper() for n in registry.names() if registry.module(n).CONCURRENT_CALLS]
    raise errors.FFNError(f'InferenceRequest.concurrent_objects {value} needs an engine whose '
                          f'calls may run at once, engine: {" or ".join(able)} (got '
                          f'{engine.upper()})')
  if batch_size != 1 or request.concurrent_requests > 1:
    raise errors.FFNError(f'InferenceRequest.concurrent_objects {value} needs batch_size 1 and '
                     f'concurrent_requests 1 (got {batch_size} and '
                     f'{request.concurrent_requests}): each object runs its own model instance')
  if not seed_base.seeds_fixed_up_front(policy.cls):
    raise errors.FFNError(f'InferenceRequest.concurrent_objects {value} needs a seed policy whose '
                     f'seeds are listed before the first object grows; {policy.cls.__name__} '
                     'yields its own (it overrides __next__)')
  return value


def from_request(request: inference_pb2.InferenceRequest,
                 batch_size: Optional[int] = None) -> InferencePlan:
  """The plan of a request; `batch_size` overrides `request.batch_size`."""
  _check_request(request)
  engine, precision = engine_settings.requested(request)
  batch_size = int(batch_size if batch_size is not None else request.batch_size) or 1
  policy = seed_policy(request)
  concurrent_objects = _concurrent_objects(request, batch_size, policy, engine)
  return InferencePlan(
      output_dir=request.segmentation_output_dir,
      image=request.image,
      image_mean=np.float32(request.image_mean),
      image_stddev=np.float32(request.image_stddev),
      reference_histogram=request.reference_histogram,
      histogram_masks=tuple(request.histogram_masks),
      init_segmentation=(request.init_segmentation
                         if request.HasField('init_segmentation') else None),
      masks=tuple(request.masks),
      seed_masks=tuple(request.seed_masks),
      shift_mask=_optional_volume(request, 'shift_mask'),
      shift_mask_scale=max(int(request.shift_mask_scale), 1),
      shift_mask_fov=(bounding_box.BoundingBox(request.shift_mask_fov)
                      if request.HasField('shift_mask_fov') else None),
      shift_mask_threshold=int(request.shift_mask_threshold),
      canvas_options=CanvasOptions.from_proto(request.inference_options),
      seed_policy=policy,
      movement_policy=movement_policy(request),
      model_name=request.model_name,
      model_args=request.model_args,
      model_checkpoint_path=request.model_checkpoint_path,
      batch_size=batch_size,
      concurrent_requests=max(int(request.concurrent_requests), 1),
      concurrent_objects=concurrent_objects,
      engine=engine,
      precision=precision,
      checkpoint_interval_sec=float(request.checkpoint_interval),
      save_raw_image=bool(request.alignment_options.save_raw),
  )
