"""The Canvas: flood-filling inference state for one subvolume.

The canvas holds the image, the object map being grown (`seed`, logits; NaN
where the network never predicted), the segmentation built so far and the
bookkeeping around it. It runs the network through an executor and moves its
field of view with a movement policy. It knows nothing of files except the
checkpoint path it is given (see `canvas_checkpoint`), nor of protos: its
options come as a `plan.CanvasOptions`.

All positions and arrays are zyx.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ffn.inference.growing import checkpoint_file as canvas_checkpoint
from ffn.inference.growing import visualization as canvas_visualization
from ffn.inference.growing import growth_record
from ffn.inference.policies import movement
from ffn.inference.growing import pool as object_pool
from ffn.inference.request import plan
from ffn.inference.policies import seed as seed_policies
from ffn.inference.policies import seed_base
from ffn.utils.axes import Position
from ffn.utils.axes import zyx
from ffn.inference.inference_utils import Counters
from ffn.inference.inference_utils import TimedIter
from ffn.inference.inference_utils import timer_counter
from ffn.inference.io.probmaps import quantize_probability
from ffn.inference.io.results import OriginInfo
from ffn.utils import cli
from ffn.utils import probability
from ffn.utils import errors

MSEC_IN_SEC = 1000
# Upper bound on repeated predictions at one FOV (consistency_threshold > 0).
MAX_SELF_CONSISTENT_ITERS = 32
# Logit of 0.5: below it a voxel has been predicted as background.
_BACKGROUND_LOGIT = np.float32(0.0)
_STRONG_LOGIT = np.float32(probability.logit(0.8))


@dataclasses.dataclass
class GrownObject:
  """An object grown from `pos`: the box of the object map its FOVs could change."""
  pos: Position
  num_iters: int
  seconds: float
  box: tuple[slice, ...]
  seed_box: np.ndarray  # The object map (logits) within `box`.
  min_pos: Position  # The extreme FOV centres.
  max_pos: Position
  history: list
  # What its growth read of the segmentation and computed (concurrent growth only).
  record: Optional[growth_record.GrowthRecord] = None


class Canvas:
  """Tracks the state of FFN inference within a subvolume."""

  def __init__(self, model_info, executor, image: np.ndarray,
               options: plan.CanvasOptions,
               counters: Optional[Counters] = None,
               restrictor: Optional[movement.MovementRestrictor] = None,
               movement_policy_fn: Optional[Callable[[Any], Any]] = None,
               keep_history: bool = False,
               checkpoint_path: Optional[str] = None,
               checkpoint_interval_sec: float = 0,
               corner_zyx=None,
               keep_probability_maps: bool = True,
               voxel_size_zyx=(1, 1, 1),
               object_executors: Sequence[Any] = (),
               checkpoint_request: bytes = b''):
    """Builds a canvas over the normalised zyx float32 `image`.

    `model_info` gives the xyz geometry (`input_image_size`,
    `input_seed_size`, `pred_mask_size`, `deltas`); `executor` runs the
    network (`start_client`, `finish_client`, `predict(client, seed, image)`).
    The thresholds in `options` are float32 logits. `voxel_size_zyx`
    (physical units) shapes the distance transforms of seed policies.
    Two or more `object_executors` (one per model instance) grow that many
    objects at once in `segment_all`, with the one-at-a-time result.
    `checkpoint_request` (opaque bytes: the settings of the run) is stored in
    every checkpoint, so that a resume can be checked against it.
    """
    self.model_info = model_info
    self.executor = executor
    self.image = image
    self.shape = tuple(image.shape)
    self.corner_zyx = None if corner_zyx is None else tuple(int(c) for c in corner_zyx)
    self.counters = counters if counters is not None else Counters()
    self.restrictor = restrictor if restrictor is not None else movement.MovementRestrictor()
    self.checkpoint_path = checkpoint_path
    self.checkpoint_interval_sec = checkpoint_interval_sec
    self.checkpoint_request = checkpoint_request
    self.voxel_size_zyx = tuple(float(v) for v in voxel_size_zyx)
    self.checkpoint_last = time.time()
    self._keep_history = keep_history
    self.keep_probability_maps = keep_probability_maps

    self.options = options

    self._pred_size = zyx(model_info.pred_mask_size)
    self._input_seed_size = zyx(model_info.input_seed_size)
    self._input_image_size = zyx(model_info.input_image_size)
    self.margin = self._input_image_size // 2
    self._pred_delta = (self._input_seed_size - self._pred_size) // 2
    if np.any(self._pred_delta < 0):
      raise errors.FFNError('the prediction must not be larger than the seed input')
    # Plain-int copies for the per-FOV path, where numpy on 3-vectors costs more
    # than the arithmetic.
    self._margin_t = tuple(int(m) for m in self.margin)
    self._high_t = tuple(int(s - m) for s, m in zip(self.shape, self.margin))
    self._seed_half_t = tuple(int(s) // 2 for s in self._input_seed_size)
    self._seed_size_t = tuple(int(s) for s in self._input_seed_size)
    self._image_size_t = tuple(int(s) for s in self._input_image_size)
    self._pred_offset_t = tuple(int(h - d) for h, d in zip(self._seed_half_t, self._pred_delta))
    self._pred_size_t = tuple(int(s) for s in self._pred_size)

    self.seed = np.full(self.shape, np.nan, dtype=np.float32)
    # The box (start, end) outside which `seed` is all NaN; None: all NaN.
    self._seed_extent: Optional[tuple[list[int], list[int]]] = None
    self.segmentation = np.zeros(self.shape, dtype=np.int32)
    self.seg_prob = np.zeros(self.shape, dtype=np.uint8)

    self.global_to_local_ids: dict[int, int] = {}
    self.origins: dict[int, OriginInfo] = {}
    self.overlaps: dict[int, np.ndarray] = {}
    self.history: list = []
    self.history_deleted: list = []
    self._max_id = 0
    self._min_pos = np.zeros(3, dtype=np.int64)
    self._max_pos = np.zeros(3, dtype=np.int64)
    self.reset_seed_per_segment = True

    self.seed_policy = None
    self._seed_policy_state = None
    self._partial_segment_iters = 0
    self._exec_client_id = None
    self._keep_client = False
    # Called after every FOV (e.g. to log progress); must be cheap.
    self.on_fov: Optional[Callable[[], None]] = None
    self.object_executors = tuple(object_executors)
    # Concurrent growth (object_pool): what the growth in progress read of the
    # segmentation and computed, and a request to stop growing.
    self.record: Optional[growth_record.GrowthRecord] = None
    self.abandon = False

    if movement_policy_fn is None:
      movement_policy_fn = plan.movement_policy_fn(
          plan.PolicyPlan(movement.FaceMaxMovementPolicy, {}), model_info,
          self.options.move_threshold)
    self._movement_policy_fn = movement_policy_fn
    self.movement_policy = movement_policy_fn(self)
    self.movement_policy.reset_state((0, 0, 0))

  # -- executor client --------------------------------------------------------

  def _register_client(self) -> bool:
    """Registers with the executor; True if this call did it."""
    if self._exec_client_id is not None:
      return False
    self._exec_client_id = self.executor.start_client()
    return True

  def _deregister_client(self) -> None:
    if self._exec_client_id is not None:
      client, self._exec_client_id = self._exec_client_id, None
      self.executor.finish_client(client)

  def log_info(self, msg: str, *args) -> None:
    logging.info('[cl %s] ' + msg, self._exec_client_id, *args)

  # -- single FOV ---------------------------------------------------------------

  def local_id(self, segment_id: int) -> int:
    """The canvas id of a segment id of the initial segmentation."""
    return self.global_to_local_ids.get(segment_id, segment_id)

  def reset_state(self, start_pos: Position) -> None:
    """Prepares the movement policy and extents for a new object at `start_pos`."""
    self.movement_policy.reset_state(start_pos)
    self.history = []
    self.history_deleted = []
    self._min_pos = tuple(int(p) for p in start_pos)
    self._max_pos = self._min_pos

  def is_valid_pos(self, pos: Position, ignore_move_threshold: bool = False) -> bool:
    """Whether the FOV may be placed at `pos`."""
    if not ignore_move_threshold and self.seed[pos] < self.options.move_threshold:
      self.counters['skip_threshold'].Increment()
      return False
    if not self._in_bounds(pos):
      self.counters['skip_invalid_pos'].Increment()
      return False
    free = self.segmentation[pos] <= 0
    if self.record is not None:
      self.record.query(pos, free)
    if not free:
      self.counters['skip_invalid_pos'].Increment()
    return free

  def _in_bounds(self, pos: Position) -> bool:
    """Whether the FOV centred at `pos` lies within the image."""
    return all(low <= p < high for p, low, high in zip(pos, self._margin_t, self._high_t))

  def predict(self, pos: Position, logit_seed: np.ndarray) -> np.ndarray:
    """Runs the network with its FOV centred at `pos`; returns zyx logits."""
    if self.record is not None:
      replayed = self.record.replayed_output()
      if replayed is not None:
        self.counters['fovs-replayed'].Increment()
        return replayed
    with timer_counter(self.counters, 'predict'):
      image = self.image[tuple(slice(p - m, p - m + n) for p, m, n in
                               zip(pos, self._margin_t, self._image_size_t))]
      with timer_counter(self.counters, 'inference'):
        logits = self.executor.predict(self._exec_client_id, logit_seed, image)
    if self.record is not None:
      self.record.computed_output(logits)
    return logits

  def update_at(self, pos: Position) -> np.ndarray:
    """Predicts at `pos`, writes the result into `seed` and returns it (logits)."""
    with timer_counter(self.counters, 'update_at'):
      logit_seed = self.seed[tuple(slice(p - h, p - h + n) for p, h, n in
                                   zip(pos, self._seed_half_t, self._seed_size_t))].copy()
      # Unexplored voxels are fed as pad_value; the canvas keeps them NaN.
      np.copyto(logit_seed, self.options.pad_value, where=np.isnan(logit_seed))

      logits = self.predict(pos, logit_seed)
      threshold = self.options.consistency_threshold
      if threshold > 0:
        prob_prev = probability.expit(logit_seed)
        for _ in range(MAX_SELF_CONSISTENT_ITERS - 1):
          prob = probability.expit(logits)
          if np.mean(np.abs(prob_prev - prob)) < threshold:
            break
          prob_prev = prob
          logits = self.predict(pos, logits)

      pred_start = [p - o for p, o in zip(pos, self._pred_offset_t)]
      pred_end = [p + n for p, n in zip(pred_start, self._pred_size_t)]
      pred_sel = tuple(slice(a, b) for a, b in zip(pred_start, pred_end))
      if self.options.disco_seed_threshold >= 0:
        self._freeze_background(pred_sel, logits)
      self.seed[pred_sel] = logits
      self._extend_seed_extent(pred_start, pred_end)
    return logits

  def _extend_seed_extent(self, start, end) -> None:
    """Grows the box outside which `seed` is known to be NaN to include start..end."""
    if self._seed_extent is None:
      self._seed_extent = (list(start), list(end))
    else:
      low, high = self._seed_extent
      self._seed_extent = ([min(a, b) for a, b in zip(low, start)],
                           [max(a, b) for a, b in zip(high, end)])

  def _freeze_background(self, pred_sel, logits: np.ndarray) -> None:
    """Keeps voxels once predicted as background from being re-activated."""
    old = self.seed[pred_sel]
    if self._keep_history:
      self.history_deleted.append(
          int(np.sum((old >= _STRONG_LOGIT) & (logits < _BACKGROUND_LOGIT))))
    # count/size is the float64 mean np.mean would give, without the float copy.
    active = np.count_nonzero(logits >= self.options.move_threshold) / logits.size
    if active > self.options.disco_seed_threshold:
      # NaN (never predicted) compares false, so those voxels are never frozen.
      with np.errstate(invalid='ignore'):
        frozen = (old < _BACKGROUND_LOGIT) & (logits > old)
      # np.where and a copy back: a third of the time of a masked copyto.
      logits[...] = np.where(frozen, old, logits)

  def init_seed(self, pos: Position) -> None:
    """Clears the object map and places the initial activation at `pos`.

    Only the box this canvas wrote into since the last clearing is cleared
    (the whole map after `load_state`); code that writes into `seed` itself
    calls `clear_seed` instead.
    """
    if self._seed_extent is not None:
      low, high = self._seed_extent
      self.seed[tuple(slice(a, b) for a, b in zip(low, high))] = np.nan
    self.seed[pos] = self.options.init_activation
    self._seed_extent = ([int(p) for p in pos], [int(p) + 1 for p in pos])

  def clear_seed(self) -> None:
    """Sets the whole object map to NaN (never predicted)."""
    self.seed.fill(np.nan)
    self._seed_extent = None

  # -- one object ---------------------------------------------------------------

  def segment_at(self, start_pos: Position, dynamic_image=None,
                 vis_update_every: int = 10, vis_fixed_z: bool = False,
                 partial_segment_iters: int = 0) -> int:
    """Grows the object map from `start_pos`; returns the number of FOVs run.

    `partial_segment_iters` > 0 continues an object restored from a checkpoint.
    `dynamic_image` (a callable taking an RGB array, or an object with
    `UpdateFromPIL`) gets a picture of the state every `vis_update_every` FOVs.
    """
    start_pos = tuple(int(v) for v in start_pos)
    own_client = self._register_client()
    try:
      if not partial_segment_iters:
        if self.reset_seed_per_segment:
          self.init_seed(start_pos)
        self.reset_state(start_pos)
        if not len(self.movement_policy):
          self.movement_policy.append(
              (self.movement_policy.score_threshold * 2, start_pos))
      num_iters = int(partial_segment_iters)

      with timer_counter(self.counters, 'segment_at-loop'):
        for pos in self.movement_policy:
          if self.abandon:
            break
          if self.seed[start_pos] < self.options.move_threshold:
            self.counters['seed_got_too_weak'].Increment()
            break
          if not self.restrictor.is_valid_pos(pos):
            self.counters['skip_restriced_pos'].Increment()
            continue

          pred = self.update_at(pos)
          self._min_pos = tuple(map(min, self._min_pos, pos))
          self._max_pos = tuple(map(max, self._max_pos, pos))
          num_iters += 1
          with timer_counter(self.counters, 'movement_policy'):
            self.movement_policy.update(pred, pos)

          if self._keep_history:
            self.history.append(pos)
          if self.on_fov is not None:
            self.on_fov()
          if dynamic_image is not None and num_iters % vis_update_every == 0:
            vis_pos = (start_pos[0], pos[1], pos[2]) if vis_fixed_z else pos
            canvas_visualization.show(
                dynamic_image, canvas_visualization.visualize_state(
                    self.seed, vis_pos, self.movement_policy))
          self._maybe_save_checkpoint(partial_segment_iters=num_iters)
    finally:
      if own_client and not self._keep_client:
        self._deregister_client()
    return num_iters

  # -- the whole subvolume -------------------------------------------------------

  def segment_all(self, seed_policy=seed_policies.PolicyPeaks) -> None:
    """Tries to create a segment from every seed that `seed_policy(canvas)` yields."""
    self.seed_policy = seed_policy(self)
    if self._seed_policy_state is not None:
      self.seed_policy.set_state(self._seed_policy_state)
      self._seed_policy_state = None
    partial_iters, self._partial_segment_iters = self._partial_segment_iters, 0

    # Registered from the first object on (not while the seed policy computes
    # its seeds, which would hold up the batches of other canvases) to the end.
    self._keep_client = True
    try:
      with timer_counter(self.counters, 'segment_all'):
        seeds = TimedIter(self.seed_policy, self.counters, 'seed-policy')
        if partial_iters:
          # The object in flight at the checkpoint continues in this canvas.
          pos = next(seeds, None)
          if pos is not None:
            self.try_seed(pos, partial_iters)
        if len(self.object_executors) > 1 and self._seeds_listed():
          object_pool.segment_all(self, seeds)
        else:
          for pos in seeds:
            self.try_seed(pos)
      self.log_info('Segmentation done.')
    finally:
      # Waiting clients would otherwise block the executor's batches.
      self._keep_client = False
      self._deregister_client()

  def _seeds_listed(self) -> bool:
    """Whether the seed policy lists its seeds up front, as growing objects at once needs."""
    if seed_base.seeds_fixed_up_front(type(self.seed_policy)):
      return True
    logging.warning('%s chooses seeds as objects grow: growing one object at a time.',
                    type(self.seed_policy).__name__)
    return False

  def seed_may_start(self, pos: Position) -> bool:
    """Whether an object may be grown from `pos` given the segmentation now (no side effects)."""
    return (self._in_bounds(pos) and self.segmentation[pos] <= 0
            and self._restrictor_allows_seed(pos) and not self._near_segment(pos))

  def _restrictor_allows_seed(self, pos: Position) -> bool:
    return self.restrictor.is_valid_pos(pos) and self.restrictor.is_valid_seed(pos)

  def _near_segment(self, pos: Position) -> bool:
    """Whether a segment lies within min_boundary_dist of `pos` (no seed starts there)."""
    near = tuple(slice(max(p - int(d), 0), p + int(d) + 1)
                 for p, d in zip(pos, self.options.min_boundary_dist))
    return bool(np.any(self.segmentation[near] > 0))

  def try_seed(self, pos: Position, partial_iters: int = 0) -> None:
    """Grows and adds the object seeded at `pos` unless the segmentation rules the seed out."""
    if self.take_seed(pos, partial_iters):
      self.grow_and_add(pos, partial_iters)

  def take_seed(self, pos: Position, partial_iters: int = 0) -> bool:
    """Whether an object is grown from `pos` now (a seed too near a segment is marked -1)."""
    if not (self.is_valid_pos(pos, ignore_move_threshold=True)
            and self._restrictor_allows_seed(pos)):
      return False
    if not partial_iters:
      # The seed at `pos` is not processed yet: a restart must redo it.
      self._maybe_save_checkpoint(partial_segment_iters=0, seed_pending=True)
      if self._near_segment(pos):
        self.segmentation[pos] = -1
        return False
    return True

  def grow_and_add(self, pos: Position, partial_iters: int = 0,
                   replay: Optional[growth_record.GrowthRecord] = None) -> None:
    """Grows the object seeded at `pos` in this canvas and adds it.

    `replay`, an earlier growth from `pos`, stands in for the model calls for
    as long as that growth's course still holds.
    """
    self.log_info('Starting segmentation at %r (zyx)', pos)
    seg_start = time.time()
    if replay is not None and not partial_iters:
      self.record = growth_record.GrowthRecord(replay, max_bytes=0)
    try:
      num_iters = self.segment_at(pos, partial_segment_iters=partial_iters)
    finally:
      self.record = None
    self.add_object(self.grown(pos, num_iters, time.time() - seg_start))

  def grown(self, pos: Position, num_iters: int, seconds: float,
            copy_seed: bool = False) -> GrownObject:
    """The object just grown from `pos` (its object map box a copy with `copy_seed`)."""
    # Only the box the FOV visited can have changed.
    half = self._pred_size // 2
    box = tuple(slice(max(int(s), 0), int(e) + 1)
                for s, e in zip(np.subtract(self._min_pos, half), np.add(self._max_pos, half)))
    seed_box = self.seed[box]
    return GrownObject(pos=pos, num_iters=num_iters, seconds=seconds, box=box,
                       seed_box=seed_box.copy() if copy_seed else seed_box,
                       min_pos=tuple(self._min_pos), max_pos=tuple(self._max_pos),
                       history=list(self.history), record=self.record)

  def add_object(self, obj: GrownObject) -> None:
    """Adds a grown object as a segment if it qualifies (else marks its seed as failed)."""
    pos, t_seg = obj.pos, obj.seconds
    self.counters['fovs-of-objects'].IncrementBy(obj.num_iters)
    self._min_pos, self._max_pos = obj.min_pos, obj.max_pos
    self.history = obj.history
    if obj.num_iters <= 0:
      self.counters['invalid-other-time-ms'].IncrementBy(t_seg * MSEC_IN_SEC)
      self.log_info('Failed: num iters was %d', obj.num_iters)
      return
    local_pos = tuple(p - b.start for p, b in zip(pos, obj.box))
    if obj.seed_box[local_pos] < self.options.move_threshold:
      if self.segmentation[pos] == 0:
        self.segmentation[pos] = -1
      self.log_info('Failed: weak seed')
      self.counters['invalid-weak-time-ms'].IncrementBy(t_seg * MSEC_IN_SEC)
      return

    seg_view = self.segmentation[obj.box]
    seed_view = obj.seed_box
    mask = seed_view >= self.options.segment_threshold
    raw_voxels = int(np.sum(mask))
    overlapped_ids, counts = np.unique(seg_view[mask], return_counts=True)
    keep = overlapped_ids > 0
    overlapped_ids, counts = overlapped_ids[keep], counts[keep]
    # New segments never overwrite existing ones (but do replace -1 markers).
    mask &= seg_view <= 0
    new_voxels = int(np.sum(mask))
    if new_voxels < self.options.min_segment_size:
      if self.segmentation[pos] == 0:
        self.segmentation[pos] = -1
      self.log_info('Failed: too small: %d', new_voxels)
      self.counters['invalid-small-time-ms'].IncrementBy(t_seg * MSEC_IN_SEC)
      return

    self.counters['voxels-segmented'].IncrementBy(new_voxels)
    self.counters['voxels-overlapping'].IncrementBy(raw_voxels - new_voxels)
    sid = self.next_segment_id()
    seg_view[mask] = sid
    if self.keep_probability_maps:
      self.seg_prob[obj.box][mask] = quantize_probability(
          probability.expit(seed_view[mask]))
    self.overlaps[sid] = np.array([overlapped_ids, counts])
    self.origins[sid] = OriginInfo(tuple(int(v) for v in pos), obj.num_iters, t_seg)
    self.counters['valid-time-ms'].IncrementBy(t_seg * MSEC_IN_SEC)
    self.counters['segments-created'].Increment()
    self.log_info('Created supervoxel:%d  seed(zyx):%s  size:%d  iters:%d',
                  sid, pos, new_voxels, obj.num_iters)
    self._maybe_save_checkpoint(partial_segment_iters=0)

  def object_grower(self, executor) -> Canvas:
    """A canvas growing objects into its own object map, against this one's segmentation.

    It shares the image, segmentation, options and counters, has its own
    object map, movement policy and `executor`, and a record of each growth
    (see object_pool). It never writes the segmentation.
    """
    grower = copy.copy(self)
    grower.executor = executor
    grower.seed = np.full(self.shape, np.nan, dtype=np.float32)
    grower._seed_extent = None
    grower.history, grower.history_deleted = [], []
    grower.checkpoint_path = None
    grower.seed_policy = None
    grower._exec_client_id = None
    grower._keep_client = False
    grower.object_executors = ()
    grower.record = None
    grower.abandon = False
    grower.movement_policy = self._movement_policy_fn(grower)
    grower.movement_policy.reset_state((0, 0, 0))
    return grower

  def next_segment_id(self) -> int:
    """Takes the next free segment id."""
    self._max_id += 1
    while self._max_id in self.origins:
      self._max_id += 1
    return self._max_id

  # -- initial segmentation ---------------------------------------------------------

  def init_segmentation_from_volume(self, volume, corner, end,
                                    align_and_crop: Optional[Callable] = None) -> None:
    """Pre-fills the segmentation from the zyx box corner..end of a 3-D or 4-D (c,z,y,x) volume.

    Ids are made contiguous (0 stays background); the map from the volume's
    ids to the canvas's is kept in `global_to_local_ids`.
    """
    box = tuple(slice(int(a), int(b)) for a, b in zip(corner, end))
    if len(volume.shape) == 4:
      labels = np.asarray(volume[(0,) + box])
    else:
      labels = np.asarray(volume[box])
    ids, local = np.unique(labels, return_inverse=True)
    # 0 stays background even where the volume has no background voxel.
    if ids.size and ids[0] != 0:
      local = local + 1
      new_ids = np.arange(1, ids.size + 1)
    else:
      new_ids = np.arange(ids.size)
    local = local.reshape(labels.shape).astype(np.int32)
    self.global_to_local_ids = {int(g): int(l) for g, l in zip(ids, new_ids) if g != 0}
    if align_and_crop is not None:
      local = align_and_crop(local)
    self.segmentation[:] = local
    if self.keep_probability_maps:
      self.seg_prob[self.segmentation > 0] = quantize_probability(np.array([1.0]))[0]
    self._max_id = int(self.segmentation.max(initial=0))
    self.log_info('Initial segmentation loaded; max id %d.', self._max_id)

  # -- checkpoints ------------------------------------------------------------------

  def state(self, rewind_seed: bool = False) -> canvas_checkpoint.CanvasState:
    """The state to checkpoint (the canvas's own arrays, not copies).

    `rewind_seed` makes the seed-policy position point back at the last seed
    taken (an object in flight or a seed not yet processed), so that a
    restart redoes it.
    """
    seed_policy_state = None
    if self.seed_policy is not None:
      seed_policy_state = self.seed_policy.get_state(previous=rewind_seed)
    return canvas_checkpoint.CanvasState(
        segmentation=self.segmentation,
        seed=self.seed,
        seg_prob=self.seg_prob if self.keep_probability_maps else None,
        origins=self.origins,
        overlaps=self.overlaps,
        history=self.history,
        history_deleted=self.history_deleted,
        max_id=self._max_id,
        min_pos=self._min_pos,
        max_pos=self._max_pos,
        global_to_local_ids=self.global_to_local_ids,
        movement_policy_state=self.movement_policy.get_state(),
        seed_policy_state=seed_policy_state,
        counters=self.counters.dumps())

  def load_state(self, state: canvas_checkpoint.CanvasState) -> None:
    """Takes over a checkpointed state; what it lacks (None) keeps its current value."""
    self.segmentation[:] = state.segmentation
    self.seed[:] = state.seed
    # The restored object map may hold values anywhere.
    self._seed_extent = ([0, 0, 0], list(self.shape))
    if self.keep_probability_maps and state.seg_prob is not None:
      self.seg_prob[:] = state.seg_prob
    self.origins = state.origins
    if state.overlaps is not None:
      self.overlaps = state.overlaps
    self.history = state.history
    self.history_deleted = state.history_deleted
    self._max_id = (state.max_id if state.max_id is not None
                    else int(self.segmentation.max(initial=0)))
    if state.min_pos is not None:
      self._min_pos, self._max_pos = state.min_pos, state.max_pos
    if state.global_to_local_ids is not None:
      self.global_to_local_ids = state.global_to_local_ids
    self.movement_policy.restore_state(state.movement_policy_state)
    self._seed_policy_state = state.seed_policy_state
    self.counters.loads(state.counters)
    self.counters['voxels-segmented'].Set(int(np.sum(self.segmentation > 0)))

  def save_checkpoint(self, path: str, partial_segment_iters: int = 0,
                      seed_pending: bool = False) -> None:
    """Writes the inference state to `path` (atomically)."""
    with timer_counter(self.counters, 'save_checkpoint'):
      canvas_checkpoint.save(self, path, partial_segment_iters=partial_segment_iters,
                             seed_pending=seed_pending)
    self.log_info('Inference checkpoint saved to %s.', path)

  def restore_checkpoint(self, path: str) -> int:
    """Loads the state saved at `path`; returns the FOV count of the object in flight."""
    partial = canvas_checkpoint.restore(self, path)
    self._partial_segment_iters = partial
    self.log_info('Inference checkpoint restored from %s.', path)
    return partial

  def _maybe_save_checkpoint(self, partial_segment_iters: int = 0,
                             seed_pending: bool = False) -> None:
    if self.checkpoint_path and cli.stop_requested():
      # A consistent point after Ctrl-C: save, then stop (resumable like any checkpoint).
      self.save_checkpoint(self.checkpoint_path, partial_segment_iters, seed_pending)
      raise cli.Interrupted(f'progress saved to {self.checkpoint_path}')
    if not self.checkpoint_path or self.checkpoint_interval_sec <= 0:
      return
    if time.time() - self.checkpoint_last < self.checkpoint_interval_sec:
      return
    self.save_checkpoint(self.checkpoint_path, partial_segment_iters, seed_pending)
    self.checkpoint_last = time.time()

  # -- notebooks ------------------------------------------------------------------

  def visualize_state(self, pos: Optional[Position] = None) -> np.ndarray:
    """An RGB picture of ortho planes of the object map through `pos` (default: centre)."""
    if pos is None:
      pos = tuple(s // 2 for s in self.shape)
    return canvas_visualization.visualize_state(self.seed, pos, self.movement_policy)

