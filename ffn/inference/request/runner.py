"""The Runner: FFN inference over subvolumes, from an InferenceRequest to files.

It turns the request into a typed plan once (`plan.from_request`), opens the
volumes and the model, builds a Canvas per subvolume (image, restrictor,
checkpoint path), runs it and saves the result (`results`, `probmaps`). It
knows nothing of how the field of view moves.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import time
from typing import Iterable, Optional

import numpy as np

from ffn.utils import align
from ffn.utils import axes
from ffn.inference.growing import canvas as canvas_lib
from ffn.inference.growing import checkpoint_file as canvas_checkpoint
from ffn.inference.engines import settings as engine_settings
from ffn.inference.engines import executor as executor_lib
from ffn.inference.request import histogram
from ffn.inference import inference_pb2
from ffn.inference import inference_utils
from ffn.inference.io import masks
from ffn.inference.policies import movement
from ffn.inference.request import plan as plan_lib
from ffn.inference.io import probmaps
from ffn.inference.io import results
from ffn.inference.request import settings_check
from ffn.inference.io import volumes
from ffn.utils.axes import ZYX
from ffn.inference.inference_utils import timer_counter
from ffn.training import import_util
from ffn.utils import atomic
from ffn.utils import bounding_box
from ffn.utils import channels
from ffn.utils import errors
from ffn.utils import locks


class Runner:
  """Runs FFN inference on subvolumes of the volume an InferenceRequest names."""

  ALL_MASKED = 'all-masked'

  def __init__(self):
    self.counters = inference_utils.Counters()
    self.executor = None
    # Model instances, and a direct executor for each, when objects grow concurrently.
    self.object_models: tuple = ()
    self.object_executors: tuple = ()
    self.request: Optional[inference_pb2.InferenceRequest] = None
    self.plan: Optional[plan_lib.InferencePlan] = None
    self.model = None
    # Whether a finished result made with other settings is kept (see settings_check).
    self.reuse_mismatched_results = False
    self._undecided_image = None  # A 4-D image whose channel axis the first box decides.
    # What runs the model (engine, precision), once load_model has run.
    self.engine_settings: Optional[engine_settings.EngineSettings] = None

  def __del__(self):
    try:
      self.stop_executor()
    except Exception:  # pylint: disable=broad-except
      pass

  def stop_executor(self) -> None:
    """Shuts the executor down (no-op when none runs)."""
    if self.executor is not None:
      self.executor.stop()
      self.executor = None

  # -- set-up -------------------------------------------------------------------

  def start(self, request: inference_pb2.InferenceRequest,
            batch_size: Optional[int] = None, model=None) -> None:
    """Validates the request, opens its volumes, builds and restores the model.

    `batch_size` defaults to `request.batch_size`. A ready `model` (with
    `info` and `predict_logits`) may be passed instead of building one from
    model_name/model_args/model_checkpoint_path.
    """
    self.prepare(request, batch_size)
    self.load_model(model)

  def prepare(self, request: inference_pb2.InferenceRequest,
              batch_size: Optional[int] = None) -> None:
    """The cheap half of `start`: validates the request and opens its volumes."""
    self.request = request
    self.plan = plan = plan_lib.from_request(request, batch_size)
    self.batch_size = plan.batch_size
    self.concurrent_requests = plan.concurrent_requests
    self._reference_lut = (histogram.load_reference_lut(plan.reference_histogram)
                           if plan.reference_histogram else None)

    with timer_counter(self.counters, 'volstore-open'):
      image = volumes.decorated_volume(plan.image)
      try:
        self._image_volume = channels.channels_first(image, 'InferenceRequest.image')
        self._undecided_image = None
      except channels.ChannelAxisError:
        # The first box decides (see check_box); until then, its spatial shape is unknown.
        self._image_volume, self._undecided_image = image, image
      self._init_seg_volume = (volumes.decorated_volume(plan.init_segmentation)
                               if plan.init_segmentation is not None else None)
      self._shift_mask_volume = (volumes.decorated_volume(plan.shift_mask)
                                 if plan.shift_mask is not None else None)
      self._mask_volumes: dict = {}
    self._aligner = align.Aligner()

  def load_model(self, model=None) -> None:
    """The slow half of `start`: builds and restores the model, starts the executor.

    The model then runs on the engine and precision of the request (see
    `engine_settings`); TensorFlow float32 runs the model itself.
    """
    self.stop_executor()
    if model is None:
      model = self.restore_model()
    self.engine_settings = engine_settings.settings_for(self.plan.engine, self.plan.precision)
    # A precision that falls back to float32 is a warning: the run is slower than asked.
    log = logging.warning if self.engine_settings.note else logging.info
    log('%s', self.engine_settings.describe())
    with timer_counter(self.counters, 'engine-build'):
      model = engine_settings.build(model, self.engine_settings, self.batch_size)
      instances = engine_settings.instances(model, self.engine_settings,
                                            self.plan.concurrent_objects)
    self.model = model
    self.object_models = tuple(instances) if len(instances) > 1 else ()
    if self.object_models:
      logging.info('Growing %d objects at once per subvolume.', len(instances))
    self.movement_policy_fn = self.plan.movement_policy_fn(model.info)
    self.start_executor()

  def start_executor(self) -> None:
    """(Re)starts the executor around `self.model`: direct, or batching FOVs of several canvases."""
    self.stop_executor()
    if self.batch_size == 1 and self.concurrent_requests == 1:
      self.executor = executor_lib.DirectExecutor(self.model.predict_logits, self.counters)
    else:
      self.executor = executor_lib.BatchExecutor(self.model.predict_logits, self.counters,
                                                 self.batch_size)
    self.executor.start()
    self.object_executors = tuple(executor_lib.DirectExecutor(m.predict_logits, self.counters)
                                  for m in self.object_models)

  def restore_model(self):
    """The model of the request, its checkpoint restored (and so checked against it)."""
    plan = self.plan
    # Imported here so that bad requests fail before TensorFlow loads.
    from ffn.training import checkpoint  # pylint: disable=g-import-not-at-top
    if not plan.model_name:
      raise errors.FFNError('InferenceRequest.model_name must be set, '
                       'e.g. "convstack_3d.ConvStack3DFFNModel"')
    if not plan.model_checkpoint_path:
      raise errors.FFNError('InferenceRequest.model_checkpoint_path must be set')
    with timer_counter(self.counters, 'restore-tf-checkpoint'):
      model = import_util.build_model(plan.model_name, plan.model_args,
                                      batch_size=self.batch_size)
      step = checkpoint.restore_model(model, plan.model_checkpoint_path)
    logging.info('Model %s restored from %s (step %s).', plan.model_name,
                 plan.model_checkpoint_path, step)
    return model

  @property
  def image_shape_zyx(self) -> tuple[int, ...]:
    """The zyx shape of the image volume (after `prepare`)."""
    return tuple(int(n) for n in self._image_volume.shape[-3:])

  @property
  def init_seg_volume(self):
    """The opened InferenceRequest.init_segmentation volume, or None."""
    return self._init_seg_volume

  # -- one subvolume ------------------------------------------------------------------

  def check_box(self, corner: ZYX, size: ZYX) -> None:
    """Raises FFNError unless the zyx box lies inside the image and holds a field of view.

    The FOV is checked once the model is loaded. The first box also decides the
    channel axis of a 4-D image whose shape leaves it open, and the shape the
    init_segmentation must have.
    """
    corner, size = axes.zyx_triple(corner), axes.zyx_triple(size)
    start_xyz, size_xyz = axes.xyz(corner), axes.xyz(size)
    if min(size) <= 0:
      raise errors.FFNError(f'bounding box size (xyz) {size_xyz} must be positive on every axis')
    if self._undecided_image is not None:
      end = [c + n for c, n in zip(corner, size)]
      self._image_volume = channels.channels_first(self._undecided_image,
                                                   'InferenceRequest.image', end)
      self._undecided_image = None
    shape = tuple(int(s) for s in self._image_volume.shape[-3:])
    if min(corner) < 0 or any(c + n > s for c, n, s in zip(corner, size, shape)):
      end_xyz = tuple(c + n for c, n in zip(start_xyz, size_xyz))
      raise errors.FFNError(
          f'bounding box start {start_xyz} size {size_xyz} (xyz, ending at {end_xyz}) reaches '
          f'beyond the image volume of size {axes.xyz(shape)} (xyz); give a box inside it')
    self._check_init_segmentation(shape)
    self._check_mask_volumes(corner, size)
    if self.model is not None:
      fov = tuple(int(v) for v in self.model.info.input_image_size)
      if any(n < f for n, f in zip(size_xyz, fov)):
        raise errors.FFNError(
            f'bounding box size {size_xyz} (xyz) is smaller than the model\'s field of view '
            f'{fov} (xyz), so no FOV fits in it; give a box at least that large')

  def _check_mask_volumes(self, corner: ZYX, size: ZYX) -> None:
    """Raises FFNError unless every volume mask of the request covers the zyx box."""
    end = [c + n for c, n in zip(corner, size)]
    for field in ('masks', 'seed_masks', 'histogram_masks'):
      for i, config in enumerate(getattr(self.plan, field)):
        if config.WhichOneof('source') != 'volume':
          continue
        key = config.volume.mask.SerializeToString()
        if key not in self._mask_volumes:
          self._mask_volumes[key] = volumes.decorated_volume(config.volume.mask)
        shape = tuple(int(n) for n in self._mask_volumes[key].shape[-3:])
        if any(e > n for e, n in zip(end, shape)):
          raise errors.FFNError(
              f'InferenceRequest.{field}[{i}].volume.mask has shape {axes.xyz(shape)} (xyz), '
              f'but the box reaches {axes.xyz(end)} (xyz); a mask volume must cover the box')

  def _check_init_segmentation(self, image_shape: ZYX) -> None:
    """Raises FFNError unless init_segmentation holds integer ids over the image's shape."""
    volume = self._init_seg_volume
    if volume is None:
      return
    shape = tuple(int(s) for s in volume.shape[-3:])
    if len(volume.shape) not in (3, 4) or shape != tuple(image_shape):
      raise errors.FFNError(
          f'InferenceRequest.init_segmentation has shape {tuple(volume.shape)[::-1]} (xyz'
          f'{"c" if len(volume.shape) == 4 else ""}) but the image is {axes.xyz(image_shape)} '
          '(xyz); it must cover the image voxel for voxel')
    if np.dtype(volume.dtype).kind not in 'iu':
      raise errors.FFNError(f'InferenceRequest.init_segmentation is {np.dtype(volume.dtype)}; '
                            'expected integer segment ids')

  def make_restrictor(self, corner: ZYX, size: ZYX, image: np.ndarray, alignment):
    """The MovementRestrictor of the request's masks; None if none; ALL_MASKED."""
    kwargs = {}
    if self.plan.masks:
      with timer_counter(self.counters, 'load-mask'):
        mask = masks.build_mask(self.plan.masks, corner, size, self._mask_volumes,
                                  image, alignment)
      if np.all(mask):
        return self.ALL_MASKED
      kwargs['mask'] = mask
    if self.plan.seed_masks:
      with timer_counter(self.counters, 'load-seed-mask'):
        seed_mask = masks.build_mask(self.plan.seed_masks, corner, size,
                                       self._mask_volumes, image, alignment)
      if np.all(seed_mask):
        return self.ALL_MASKED
      kwargs['seed_mask'] = seed_mask
    if self._shift_mask_volume is not None:
      with timer_counter(self.counters, 'load-shift-mask'):
        kwargs.update(self._shift_mask_kwargs(corner, size, alignment))
    return movement.MovementRestrictor(**kwargs) if kwargs else None

  def _shift_mask_kwargs(self, corner: ZYX, size: ZYX, alignment) -> dict:
    """Restrictor arguments for the shift mask (read at its xy downsampling)."""
    s = self.plan.shift_mask_scale
    scale = np.array([1, s, s])
    shift_corner = np.asarray(corner) // scale
    shift_size = -(-np.asarray(size) // scale)
    shift_alignment = alignment.rescaled(1.0 / scale)
    src_corner, src_size = shift_alignment.expand_bounds(shift_corner, shift_size,
                                                         forward=False)
    src_corner, src_size = volumes.clip_subvolume_to_bounds(src_corner, src_size,
                                                            self._shift_mask_volume)
    src_end = src_corner + src_size
    raw = np.asarray(self._shift_mask_volume[
        0:2, src_corner[0]:src_end[0], src_corner[1]:src_end[1], src_corner[2]:src_end[2]])
    shift_mask = np.array([
        shift_alignment.align_and_crop(src_corner, raw[i], shift_corner, shift_size)
        for i in range(2)])
    shift_mask = alignment.transform_shift_mask(corner, s, shift_mask)
    fov = self.plan.shift_mask_fov
    if fov is None:
      diameter = np.asarray(self.model.info.input_image_size)
      fov = bounding_box.BoundingBox(start=-(diameter // 2), size=diameter)
    return dict(shift_mask=shift_mask, shift_mask_fov=fov, shift_mask_scale=s,
                shift_mask_threshold=self.plan.shift_mask_threshold)

  def _read_image(self, corner: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The zyx image of a box inside the volume (channel 0 of 4-D volumes), checked finite."""
    box = bounding_box.BoundingBox.from_zyx(corner, size).to_slice()
    if len(self._image_volume.shape) == 4:
      box = (0,) + tuple(box)
    image = np.asarray(self._image_volume[tuple(box)])
    if image.dtype.kind not in 'iuf':
      raise errors.FFNError(f'InferenceRequest.image is {image.dtype}; expected integer or '
                            'floating-point intensities')
    if image.dtype.kind == 'f':
      bad = ~np.isfinite(image)
      if bad.any():
        first = np.add(np.argwhere(bad)[0], corner)
        raise errors.FFNError(
            f'InferenceRequest.image holds {int(bad.sum())} NaN or infinite voxels in the box '
            f'start {axes.xyz(corner)} size {axes.xyz(size)} (xyz), the first at '
            f'{axes.xyz(first)} (xyz); every intensity must be a finite number')
    return image

  def make_canvas(self, corner: ZYX, size: ZYX, **canvas_kwargs):
    """(Canvas, Alignment) for a zyx box, or (None, None) if it is entirely masked."""
    corner, size = axes.zyx_triple(corner), axes.zyx_triple(size)
    self.check_box(corner, size)
    counters = self.counters.get_sub_counters()
    with timer_counter(counters, 'load-image'):
      alignment = self._aligner.generate_alignment(corner, size)
      dst_corner, dst_size = alignment.expand_bounds(corner, size, forward=True)
      src_corner, src_size = alignment.expand_bounds(dst_corner, dst_size, forward=False)
      src_corner, src_size = volumes.clip_subvolume_to_bounds(src_corner, src_size,
                                                              self._image_volume)
      src_image = self._read_image(src_corner, src_size)

      def align_and_crop(data):
        # Out-of-volume voxels are 0, before normalisation.
        return alignment.align_and_crop(src_corner, data, dst_corner, dst_size, fill=0)

      image = align_and_crop(src_image)
      logging.info('Subvolume %r + %r (zyx): image %r loaded.', corner, size, image.shape)

    restrictor = self.make_restrictor(dst_corner, dst_size, image, alignment)
    if restrictor is self.ALL_MASKED:
      logging.info('Subvolume %r: everything masked.', corner)
      return None, None
    if self._reference_lut is not None and not self._match_histogram(
        image, dst_corner, dst_size, alignment):
      counters['histogram-match-failed'].Increment()
      return None, None
    image = (image.astype(np.float32) - self.plan.image_mean) / self.plan.image_stddev

    canvas = canvas_lib.Canvas(
        self.model.info, self.executor, image, self.plan.canvas_options,
        counters=counters, restrictor=restrictor,
        movement_policy_fn=self.movement_policy_fn,
        checkpoint_path=results.checkpoint_path(self.plan.output_dir, corner),
        checkpoint_interval_sec=self.plan.checkpoint_interval_sec,
        corner_zyx=dst_corner, object_executors=self.object_executors,
        checkpoint_request=self.request.SerializeToString(), **canvas_kwargs)
    if self._init_seg_volume is not None:
      canvas.init_segmentation_from_volume(self._init_seg_volume, src_corner,
                                           np.asarray(src_corner) + src_size, align_and_crop)
    return canvas, alignment

  def _match_histogram(self, image: np.ndarray, corner: ZYX, size: ZYX, alignment) -> bool:
    """Matches `image` (in place) to the reference histogram, outside histogram_masks."""
    mask = None
    if self.plan.histogram_masks:
      mask = masks.build_mask(self.plan.histogram_masks, corner, size, self._mask_volumes,
                              image, alignment)
    return histogram.match_or_skip(image, self._reference_lut, mask, corner)

  def get_seed_policy(self, corner: ZYX, size: ZYX):
    """canvas -> seed policy, with the request's seed_policy_args."""
    cls = self.plan.seed_policy.cls
    kwargs = dict(corner=tuple(corner), subvol_size=tuple(size), **self.plan.seed_policy.kwargs)
    return lambda canvas: cls(canvas, **kwargs)

  def save_segmentation(self, canvas, alignment, seg_path: str, prob_path: str) -> None:
    """Writes the segmentation npz and its `.prob` (both atomically; the npz last)."""
    del alignment  # Identity alignment only: canvas and output boxes coincide.
    seg = canvas.segmentation
    seg[seg < 0] = 0
    # The npz marks a finished subvolume, so it is written after the `.prob`.
    probmaps.save_probability_map(canvas.seg_prob, prob_path, quantized=True)
    results.save_subvolume(seg, canvas.origins, seg_path,
                           request=self.request.SerializeToString(),
                           counters=canvas.counters.dumps(),
                           overlaps=canvas.overlaps,
                           engine_settings=self.engine_settings.to_json())

  def run(self, corner: ZYX, size: ZYX, reset_counters: bool = True):
    """Segments the zyx box; returns the Canvas, or None if done before or all masked."""
    corner, size = axes.zyx_triple(corner), axes.zyx_triple(size)
    if reset_counters:
      self.counters.reset()
    out_dir = self.plan.output_dir
    seg_path = results.segmentation_path(out_dir, corner)
    prob_path = results.object_prob_path(out_dir, corner)
    cpoint_path = results.checkpoint_path(out_dir, corner)
    self.check_box(corner, size)  # Before the lock creates the result's directory.
    with locks.hold(results.subvolume_path(out_dir, corner, 'lock'),
                    f'subvolume {axes.xyz(corner)} (xyz) of {out_dir}'):
      return self._run_locked(corner, size, seg_path, prob_path, cpoint_path)

  def _run_locked(self, corner: ZYX, size: ZYX, seg_path: str, prob_path: str,
                  cpoint_path: str):
    """`run` once the subvolume's lock is held."""
    out_dir = self.plan.output_dir
    if os.path.exists(seg_path):
      self._check_finished(seg_path)
      logging.info('%s exists; subvolume %r already done.', seg_path, corner)
      self._remove(cpoint_path)
      return None

    resume = os.path.exists(cpoint_path)
    if resume:
      self._check_checkpoint(cpoint_path)
    canvas, alignment = self.make_canvas(corner, size)
    if canvas is None:
      return None
    if resume:
      canvas.restore_checkpoint(cpoint_path)
    if self.plan.save_raw_image:
      image_path = results.subvolume_path(out_dir, corner, 'align')
      with atomic.atomic_open(image_path, 'wb') as f:
        np.savez_compressed(f, im=canvas.image)

    progress = _ProgressLogger(canvas.counters, corner)
    canvas.on_fov = progress.maybe_log
    canvas.segment_all(seed_policy=self.get_seed_policy(corner, size))
    progress.log(final=True)
    self.save_segmentation(canvas, alignment, seg_path, prob_path)
    self._remove(cpoint_path)
    return canvas

  def _check_finished(self, seg_path: str) -> None:
    """Raises unless a finished result was made with this request (or reuse is allowed)."""
    with results.open_npz(seg_path) as data:
      # tobytes, not item: numpy drops trailing zero bytes of 'S' scalars.
      saved = data['request'].tobytes() if 'request' in data else None
    diff = settings_check.check_saved_request(saved, self.request, seg_path,
                                              self.reuse_mismatched_results)
    if diff:
      logging.warning('%s was made with other settings (%s); reused as %s asks.', seg_path,
                      ', '.join(diff), settings_check.REUSE_FLAG)

  def _check_checkpoint(self, cpoint_path: str) -> None:
    """Raises unless a checkpoint to resume was made with this request's settings."""
    saved = canvas_checkpoint.saved_request(cpoint_path)
    if saved is None:
      logging.warning('%s records no settings (written by upstream or before they were '
                      'stored); resuming it unchecked.', cpoint_path)
      return
    diff = settings_check.differences_of(saved, self.request, cpoint_path)
    if diff:
      raise settings_check.SettingsMismatchError(
          f'{cpoint_path} is an unfinished run with other settings (differing: '
          f'{", ".join(diff)}); resuming it would mix two settings in one result. Remove it '
          'to segment this box afresh with these settings, or run with the settings it was '
          'made with')

  def run_many(self, boxes: Iterable[tuple[ZYX, ZYX]]) -> None:
    """Runs several zyx (corner, size) boxes, `concurrent_requests` at a time."""
    boxes = list(boxes)
    if self.concurrent_requests <= 1 or len(boxes) <= 1:
      for corner, size in boxes:
        self.run(corner, size, reset_counters=False)
      return
    with concurrent.futures.ThreadPoolExecutor(self.concurrent_requests) as pool:
      futures = [pool.submit(self.run, corner, size, False) for corner, size in boxes]
      for future in futures:
        future.result()

  @staticmethod
  def _remove(path: str) -> None:
    try:
      os.remove(path)
    except FileNotFoundError:
      pass


class _ProgressLogger:
  """Logs FOV rate and object count of a running canvas every `interval_sec`."""

  def __init__(self, counters, corner, interval_sec: float = 30.0):
    self._counters = counters
    self._corner = corner
    self._interval = interval_sec
    self._start = time.time()
    self._last = self._start
    # Created after any checkpoint restore: the rate counts this run's FOVs only.
    self._fovs_at_start = counters['inference-calls'].value

  def maybe_log(self) -> None:
    now = time.time()
    if now - self._last >= self._interval:
      self._last = now
      self.log()

  def log(self, final: bool = False) -> None:
    elapsed = max(time.time() - self._start, 1e-9)
    fovs = self._counters['inference-calls'].value
    rate = (fovs - self._fovs_at_start) / elapsed
    logging.info('%s subvolume %r: %d FOVs (%.2f FOVs/s), %d objects, %d voxels segmented.',
                 'Finished' if final else 'Progress', self._corner, fovs, rate,
                 self._counters['segments-created'].value,
                 self._counters['voxels-segmented'].value)
