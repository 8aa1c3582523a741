"""The Runner: FFN inference over boxes of a volume, from an InferenceRequest to result files.

  with Runner(request) as runner:          # checks the request, opens it, loads the engine
    runner.segment(box)                    # a BoundingBox (xyz): checked, locked, saved

The request becomes a typed plan once (`plan.from_request`); `RequestInputs`
opens and checks its volumes; the engine and executor live as long as the
runner. For each box the runner holds the box's lock, refuses a finished
result or checkpoint made with other settings, builds a Canvas, resumes its
checkpoint, segments it and saves the result (`io.results`, `io.probmaps`).
It knows nothing of how the field of view moves. Upstream's
`Runner().start(request)`, `run(corner, size)` (zyx) and `stop_executor()`
keep working.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from ffn.inference import inference_pb2
from ffn.inference import inference_utils
from ffn.inference.engines import executor as executor_lib
from ffn.inference.engines import settings as engine_settings
from ffn.inference.growing import canvas as canvas_lib
from ffn.inference.growing import checkpoint_file
from ffn.inference.inference_utils import timer_counter
from ffn.inference.io import probmaps
from ffn.inference.io import results
from ffn.inference.io import volumes
from ffn.inference.request import inputs as inputs_lib
from ffn.inference.request import model_source
from ffn.inference.request import plan as plan_lib
from ffn.inference.request import progress
from ffn.inference.request import settings_check
from ffn.utils import align
from ffn.utils import atomic
from ffn.utils import axes
from ffn.utils import bounding_box
from ffn.utils import errors
from ffn.utils import locks
from ffn.utils.axes import ZYX


class Runner:
  """Runs FFN inference on boxes of the volume an InferenceRequest names (see module doc)."""

  ALL_MASKED = inputs_lib.ALL_MASKED

  def __init__(self, request: Optional[inference_pb2.InferenceRequest] = None, *,
               batch_size: Optional[int] = None, model=None,
               reuse_mismatched_results: bool = False,
               stop_requested: Callable[[], bool] = lambda: False,
               engine_hook: Optional[Callable] = None, threads: Optional[int] = None):
    """A runner of `request` (started on entering it as a context, or by `start`).

    A ready `model` (with `info` and `predict_logits`) may stand in for the
    request's model_name/model_args/model_checkpoint_path. A finished result
    made with other settings is an error unless `reuse_mismatched_results`.
    Once `stop_requested()`, a box stops at its next consistent point with its
    checkpoint saved (errors.Interrupted). `engine_hook(engine)` may replace
    each engine instance built (to time or trace its calls). `threads` limits
    the engine to that many CPU threads (a worker's share of the node; None:
    every usable CPU); it is process-wide, as the engines' thread pools are.
    """
    self.counters = inference_utils.Counters()
    self.executor = None
    self.object_executors: tuple = ()
    self.model = None
    self.plan: Optional[plan_lib.InferencePlan] = None
    self.inputs: Optional[inputs_lib.RequestInputs] = None
    self.engine_settings: Optional[engine_settings.EngineSettings] = None
    self.request = request
    self.reuse_mismatched_results = reuse_mismatched_results
    self._batch_size = batch_size
    self._ready_model = model
    self._stop_requested = stop_requested
    self._engine_hook = engine_hook
    self._threads = threads
    self._aligner = align.Aligner()
    if request is not None:
      self.prepare(request, batch_size)

  def __enter__(self) -> Runner:
    if self.model is None:
      self.load_model(self._ready_model)
    return self

  def __exit__(self, *exc) -> None:
    self.stop_executor()

  def __del__(self):
    try:
      self.stop_executor()
    except Exception:  # pylint: disable=broad-except
      pass

  # -- set-up -------------------------------------------------------------------

  def start(self, request: inference_pb2.InferenceRequest,
            batch_size: Optional[int] = None, model=None) -> None:
    """Upstream's set-up: checks and opens the request, builds and restores the model."""
    self.prepare(request, batch_size)
    self.load_model(model)

  def prepare(self, request: inference_pb2.InferenceRequest,
              batch_size: Optional[int] = None) -> None:
    """The cheap half of `start`: checks the request (and exported model), opens its volumes."""
    self.request = request
    self.plan = plan_lib.from_request(request, batch_size)
    model_source.exported(self.plan)  # A bad exported model fails before any volume opens.
    self.inputs = inputs_lib.RequestInputs(self.plan, self.counters)

  def load_model(self, model=None) -> None:
    """The slow half of `start`: the model (restored or exported), the engine and the executor."""
    self.stop_executor()
    # Before the model is restored: TensorFlow fixes its thread pools when it starts.
    engine_settings.limit_threads(self.plan.engine, self._threads)
    if model is None:
      model = self.restore_model()
    self.engine_settings = engine_settings.settings_for(self.plan.engine, self.plan.precision)
    # A precision that falls back to float32 is a warning: the run is slower than asked.
    log = logging.warning if self.engine_settings.note else logging.info
    log('%s', self.engine_settings.describe())
    with timer_counter(self.counters, 'engine-build'):
      model = engine_settings.build(model, self.engine_settings, self.plan.batch_size)
      instances = engine_settings.instances(model, self.engine_settings,
                                            self.plan.concurrent_objects)
    if self._engine_hook is not None:
      model, instances = self._engine_hook(model), [self._engine_hook(m) for m in instances]
    self.model = model
    if len(instances) > 1:
      logging.info('Growing %d objects at once per subvolume.', len(instances))
    self._movement_policy_fn = self.plan.movement_policy_fn(model.info)
    if self.plan.batch_size == 1 and self.plan.concurrent_requests == 1:
      self.executor = executor_lib.DirectExecutor(model.predict_logits, self.counters)
    else:
      self.executor = executor_lib.BatchExecutor(model.predict_logits, self.counters,
                                                 self.plan.batch_size)
    self.executor.start()
    self.object_executors = tuple(executor_lib.DirectExecutor(m.predict_logits, self.counters)
                                  for m in instances) if len(instances) > 1 else ()

  def stop_executor(self) -> None:
    """Shuts the executor down (no-op when none runs)."""
    if self.executor is not None:
      self.executor.stop()
      self.executor = None

  def restore_model(self):
    """The request's model: its checkpoint restored (and so checked), or the exported model."""
    return model_source.load(self.plan, self.counters)

  @property
  def image_shape_zyx(self) -> tuple[int, ...]:
    """The zyx shape of the image volume."""
    return self.inputs.image_shape_zyx

  @property
  def init_seg_volume(self):
    """The opened InferenceRequest.init_segmentation volume, or None."""
    return self.inputs.init_segmentation

  # -- boxes --------------------------------------------------------------------

  def check_box(self, corner: ZYX, size: ZYX) -> None:
    """Raises FFNError unless the zyx box lies inside the image and (once loaded) holds a FOV."""
    fov = self.model.info.input_image_size if self.model is not None else None
    self.inputs.check_box(corner, size, fov)

  def segment(self, box: bounding_box.BoundingBox, reset_counters: bool = True):
    """Segments an (xyz) box; returns its Canvas, or None if done before or all masked."""
    return self.run(box.start_zyx, box.size_zyx, reset_counters)

  def segment_many(self, boxes: Sequence[bounding_box.BoundingBox]) -> None:
    """Segments several (xyz) boxes, `concurrent_requests` at a time (batching their FOVs)."""
    self.run_many([(b.start_zyx, b.size_zyx) for b in boxes])

  def run(self, corner: ZYX, size: ZYX, reset_counters: bool = True):
    """Segments the zyx box (upstream's name for `segment`)."""
    corner, size = axes.zyx_triple(corner), axes.zyx_triple(size)
    if reset_counters:
      self.counters.reset()
    out_dir = self.plan.output_dir
    self.check_box(corner, size)  # Before the lock creates the result's directory.
    with locks.hold(results.subvolume_path(out_dir, corner, 'lock'),
                    f'subvolume {axes.xyz(corner)} (xyz) of {out_dir}'):
      return self._run_locked(corner, size)

  def run_many(self, boxes: Iterable[tuple[ZYX, ZYX]]) -> None:
    """Segments several zyx (corner, size) boxes, `concurrent_requests` at a time."""
    boxes = list(boxes)
    if self.plan.concurrent_requests <= 1 or len(boxes) <= 1:
      for corner, size in boxes:
        self.run(corner, size, reset_counters=False)
      return
    with concurrent.futures.ThreadPoolExecutor(self.plan.concurrent_requests) as pool:
      futures = [pool.submit(self.run, corner, size, False) for corner, size in boxes]
      for future in futures:
        future.result()

  def _run_locked(self, corner: ZYX, size: ZYX):
    """`run` once the subvolume's lock is held."""
    out_dir = self.plan.output_dir
    seg_path = results.segmentation_path(out_dir, corner)
    cpoint_path = results.checkpoint_path(out_dir, corner)
    if os.path.exists(seg_path):
      self._check_finished(seg_path)
      logging.info('%s exists; subvolume %r already done.', seg_path, corner)
      _remove(cpoint_path)
      return None
    resume = os.path.exists(cpoint_path)
    if resume:
      self._check_checkpoint(cpoint_path)
    counters = self.counters.get_sub_counters()
    logger = progress.ProgressLogger(counters, corner)
    canvas, _ = self.make_canvas(corner, size, counters=counters, on_fov=logger.maybe_log)
    if canvas is None:
      return None
    logger.follow_seeds(canvas.seeds_done)
    if resume:
      canvas.restore_checkpoint(cpoint_path)
      logger.restart()
    if self.plan.save_raw_image:
      with atomic.atomic_open(results.subvolume_path(out_dir, corner, 'align'), 'wb') as f:
        np.savez_compressed(f, im=canvas.image)
    canvas.segment_all(seed_policy=self.get_seed_policy(corner, size))
    logger.log(final=True)
    self.save_segmentation(canvas, seg_path, results.object_prob_path(out_dir, corner))
    _remove(cpoint_path)
    return canvas

  def make_canvas(self, corner: ZYX, size: ZYX, checkpoint: bool = True,
                  counters: Optional[inference_utils.Counters] = None, **canvas_kwargs):
    """(Canvas, Alignment) for a zyx box, or (None, None) if it is entirely masked.

    `checkpoint` False: the canvas never writes a checkpoint.
    """
    corner, size = axes.zyx_triple(corner), axes.zyx_triple(size)
    counters = counters if counters is not None else self.counters.get_sub_counters()
    fov = self.model.info.input_image_size
    with timer_counter(counters, 'load-image'):
      alignment = self._aligner.generate_alignment(corner, size)
      dst_corner, dst_size = alignment.expand_bounds(corner, size, forward=True)
      src_corner, src_size = alignment.expand_bounds(dst_corner, dst_size, forward=False)
      src_corner, src_size = volumes.clip_subvolume_to_bounds(src_corner, src_size,
                                                              self.inputs.image_volume)
      src_image = self.inputs.read_image(src_corner, src_size)

      def align_and_crop(data):
        # Out-of-volume voxels are 0, before normalisation.
        return alignment.align_and_crop(src_corner, data, dst_corner, dst_size, fill=0)

      image = align_and_crop(src_image)
      logging.info('Subvolume %r + %r (zyx): image %r loaded.', corner, size, image.shape)

    restrictor = self.inputs.restrictor(dst_corner, dst_size, image, alignment, fov)
    if restrictor is self.ALL_MASKED:
      logging.info('Subvolume %r: everything masked.', corner)
      return None, None
    if self.inputs.reference_lut is not None and not self.inputs.match_histogram(
        image, dst_corner, dst_size, alignment):
      counters['histogram-match-failed'].Increment()
      return None, None
    image = (image.astype(np.float32) - self.plan.image_mean) / self.plan.image_stddev
    canvas = canvas_lib.Canvas(
        self.model.info, self.executor, image, self.plan.canvas_options,
        counters=counters, restrictor=restrictor, movement_policy_fn=self._movement_policy_fn,
        checkpoint_path=results.checkpoint_path(self.plan.output_dir, corner) if checkpoint
        else None,
        checkpoint_interval_sec=self.plan.checkpoint_interval_sec,
        corner_zyx=dst_corner, object_executors=self.object_executors,
        checkpoint_request=self.request.SerializeToString(),
        stop_requested=self._stop_requested, **canvas_kwargs)
    if self.inputs.init_segmentation is not None:
      canvas.init_segmentation_from_volume(self.inputs.init_segmentation, src_corner,
                                           np.asarray(src_corner) + src_size, align_and_crop)
    return canvas, alignment

  def get_seed_policy(self, corner: ZYX, size: ZYX):
    """canvas -> seed policy, with the request's seed_policy_args."""
    cls = self.plan.seed_policy.cls
    kwargs = dict(corner=tuple(corner), subvol_size=tuple(size), **self.plan.seed_policy.kwargs)
    return lambda canvas: cls(canvas, **kwargs)

  def save_segmentation(self, canvas, seg_path: str, prob_path: str) -> None:
    """Writes the segmentation npz and its `.prob` (both atomically; the npz last)."""
    seg = canvas.segmentation
    seg[seg < 0] = 0
    # The npz marks a finished subvolume, so it is written after the `.prob`.
    probmaps.save_probability_map(canvas.seg_prob, prob_path, quantized=True)
    results.save_subvolume(seg, canvas.origins, seg_path,
                           request=self.request.SerializeToString(),
                           counters=canvas.counters.dumps(), overlaps=canvas.overlaps,
                           engine_settings=self.engine_settings.to_json())

  # -- settings of earlier runs -------------------------------------------------------

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
    saved = checkpoint_file.saved_request(cpoint_path)
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


def _remove(path: str) -> None:
  try:
    os.remove(path)
  except FileNotFoundError:
    pass
