"""The Canvas: one subvolume being segmented, its image, state, grower and seed driver.

The canvas puts together the parts that segment a subvolume: its normalised
image, its `SubvolumeState`, an `ObjectGrower` (and, for objects at once, the
pool's workers), the `SeedDriver` that turns seeds into segments, and its
checkpoint file. Seed policies are built with the canvas and read its image,
segmentation, restrictor and geometry. It knows nothing of protos: options
come as a `plan.CanvasOptions`. Upstream's names (`seed` for the object map,
`segment_at`, `segment_all`, `origins`...) keep working on it.

All positions and arrays are zyx.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ffn.inference.growing import checkpoint_file
from ffn.inference.growing import driver as driver_lib
from ffn.inference.growing import pool
from ffn.inference.growing import visualization
from ffn.inference.growing import workers as workers_lib
from ffn.inference.growing.grower import GrowthProgress
from ffn.inference.growing.grower import MAX_SELF_CONSISTENT_ITERS  # pylint: disable=unused-import
from ffn.inference.growing.grower import ObjectGrower
from ffn.inference.growing.state import SubvolumeState
from ffn.inference.inference_utils import Counters
from ffn.inference.inference_utils import timer_counter
from ffn.inference.io import results
from ffn.inference.policies import movement
from ffn.inference.policies import seed as seed_policies
from ffn.inference.policies import seed_base
from ffn.utils.axes import Position


class Canvas:
  """Tracks the state of FFN inference within a subvolume."""

  def __init__(self, model_info, executor, image: np.ndarray, options,
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
               checkpoint_request: bytes = b'',
               stop_requested: Callable[[], bool] = lambda: False,
               on_fov: Optional[Callable[[], None]] = None):
    """A canvas over the normalised zyx float32 `image`.

    `model_info` gives the xyz geometry; `executor` runs the network (its
    `client()`); the thresholds in `options` are float32 logits.
    `voxel_size_zyx` (physical units) shapes the distance transforms of seed
    policies. Two or more `object_executors` (one per model instance) grow
    that many objects at once in `segment_all`, with the one-at-a-time result.
    With `checkpoint_path`, progress is saved every `checkpoint_interval_sec`
    (with `checkpoint_request`, opaque bytes: the settings of the run), and at
    the next consistent point once `stop_requested()` (then errors.Interrupted).
    `on_fov()` is called after every FOV (progress logs; it must be cheap).
    """
    self.model_info = model_info
    self.executor = executor
    self.image = image
    self.shape = tuple(image.shape)
    self.options = options
    self.corner_zyx = None if corner_zyx is None else tuple(int(c) for c in corner_zyx)
    self.counters = counters if counters is not None else Counters()
    self.restrictor = restrictor if restrictor is not None else movement.MovementRestrictor()
    self.voxel_size_zyx = tuple(float(v) for v in voxel_size_zyx)
    self.keep_history = keep_history
    self.object_executors = tuple(object_executors)
    self.checkpoint_path = checkpoint_path
    self.checkpoint_request = checkpoint_request
    self._movement_policy_fn = movement_policy_fn
    self._on_fov = on_fov
    self.state = SubvolumeState.empty(self.shape, keep_probability_maps)
    self.grower = self._grower(executor.client(), self.state.is_free)
    self.margin = self.grower.margin
    self.checkpointer = (driver_lib.Checkpointer(checkpoint_path, checkpoint_interval_sec,
                                                 self._save, stop_requested)
                         if checkpoint_path else None)
    self.driver = driver_lib.SeedDriver(self.state, options, self.counters, self.grower.in_bounds,
                                        self.restrictor, self.checkpointer,
                                        name=str(self.corner_zyx))
    self.seed_policy = None
    self._resume: Optional[tuple[Any, GrowthProgress]] = None

  def _grower(self, client, is_free) -> ObjectGrower:
    return ObjectGrower(self.model_info, client, self.image, self.options, is_free,
                        self.counters, self.restrictor, self._movement_policy_fn,
                        self.keep_history)

  # -- upstream's names --------------------------------------------------------

  @property
  def segmentation(self) -> np.ndarray:
    return self.state.segmentation

  @property
  def seg_prob(self) -> Optional[np.ndarray]:
    return self.state.seg_prob

  @property
  def origins(self) -> dict:
    return self.state.origins

  @property
  def overlaps(self) -> dict:
    return self.state.overlaps

  @property
  def global_to_local_ids(self) -> dict:
    return self.state.global_to_local_ids

  @property
  def object_map(self) -> np.ndarray:
    """The object map of the canvas's grower (logits; NaN where never predicted)."""
    return self.grower.object_map

  @property
  def seed(self) -> np.ndarray:
    """The object map under upstream's name."""
    return self.grower.object_map

  @property
  def movement_policy(self):
    return self.grower.movement_policy

  @property
  def history(self) -> list:
    return self.grower.history

  @property
  def history_deleted(self) -> list:
    return self.grower.history_deleted

  def local_id(self, segment_id: int) -> int:
    """The canvas id of a segment id of the initial segmentation."""
    return self.state.local_id(segment_id)

  def log_info(self, msg: str, *args) -> None:
    logging.info('[%s] ' + msg, self.corner_zyx, *args)

  # -- one object (notebooks, resegmentation) ---------------------------------------

  def segment_at(self, start_pos: Position, dynamic_image=None, vis_update_every: int = 10,
                 vis_fixed_z: bool = False) -> int:
    """Grows the object map from `start_pos` (nothing is added); returns the FOVs run.

    `dynamic_image` (a callable taking an RGB array, or an object with
    `UpdateFromPIL`) gets a picture of the state every `vis_update_every` FOVs.
    """
    start_pos = tuple(int(v) for v in start_pos)

    def after_fov(grower, pos, num_iters):
      if self._on_fov is not None:
        self._on_fov()
      if dynamic_image is not None and num_iters % vis_update_every == 0:
        vis_pos = (start_pos[0], pos[1], pos[2]) if vis_fixed_z else pos
        visualization.show(dynamic_image, visualization.visualize_state(
            grower.object_map, vis_pos, grower.movement_policy))

    try:
      return self.grower.grow(start_pos, after_fov=after_fov)
    finally:
      self.close()

  def close(self) -> None:
    """Leaves the executor (its batches would otherwise wait for this canvas)."""
    self.grower.client.close()

  # -- the whole subvolume ------------------------------------------------------

  def segment_all(self, seed_policy=seed_policies.PolicyPeaks) -> None:
    """Tries to create a segment from every seed that `seed_policy(canvas)` yields."""
    self.seed_policy = seed_policy(self)
    resume = self._resume
    self._resume = None
    if resume is not None and resume[0] is not None:
      self.seed_policy.set_state(resume[0])
    after_fov = (lambda grower, pos, num_iters: self._on_fov()) if self._on_fov else None
    try:
      with timer_counter(self.counters, 'segment_all'):
        seeds = driver_lib.policy_seeds(self.seed_policy, self.counters)
        if resume is not None and resume[1].num_iters:
          # The object in flight at the checkpoint continues in this canvas.
          self.driver.resume(seeds, self.grower, resume[1], after_fov)
        if len(self.object_executors) > 1 and self._seeds_listed():
          self._run_pool(seeds)
        else:
          self.driver.run(seeds, self.grower, after_fov)
      self.log_info('Segmentation done.')
    finally:
      self.close()

  def seeds_done(self) -> Optional[tuple[int, int]]:
    """(seeds taken, seeds listed) by `segment_all`'s seed policy, where it lists them; else None."""
    return None if self.seed_policy is None else seed_base.seeds_done(self.seed_policy)

  def _seeds_listed(self) -> bool:
    """Whether the seed policy lists its seeds up front, as growing objects at once needs."""
    if seed_base.seeds_fixed_up_front(type(self.seed_policy)):
      return True
    logging.warning('%s chooses seeds as objects grow: growing one object at a time.',
                    type(self.seed_policy).__name__)
    return False

  def _worker(self, client) -> workers_lib.Worker:
    recorder = workers_lib.Recorder(self.state.is_free, client, self.counters)
    return workers_lib.Worker(self._grower(recorder, recorder.is_free), recorder)

  def _run_pool(self, seeds) -> None:
    """Grows the objects of `seeds` several at once, with the one-at-a-time result."""
    workers = [self._worker(e.client()) for e in self.object_executors]
    in_order = self._worker(self.grower.client)
    try:
      pool.run(self.driver, seeds, in_order, workers)
    finally:
      for worker in workers:
        worker.recorder.close()

  # -- initial segmentation ---------------------------------------------------------

  def init_segmentation_from_volume(self, volume, corner, end,
                                    align_and_crop: Optional[Callable] = None) -> None:
    """Pre-fills the segmentation from the zyx box corner..end of a 3-D or 4-D (c,z,y,x) volume.

    Ids are made contiguous (0 stays background); the map from the volume's
    ids to the canvas's is kept in `global_to_local_ids`.
    """
    box = tuple(slice(int(a), int(b)) for a, b in zip(corner, end))
    labels = np.asarray(volume[(0,) + box] if len(volume.shape) == 4 else volume[box])
    self.state.set_initial_segmentation(labels, align_and_crop)
    self.log_info('Initial segmentation loaded; max id %d.', self.state.max_id)

  # -- checkpoints ------------------------------------------------------------------

  def _save(self, seed_state, in_flight=None) -> None:
    """Writes the checkpoint: the state, the object in flight (grower, FOVs) or the own map."""
    grower, num_iters = in_flight if in_flight is not None else (self.grower, 0)
    with timer_counter(self.counters, 'save_checkpoint'):
      checkpoint_file.save(self.checkpoint_path, self.state, grower.object_map,
                           grower.progress(num_iters), seed_state, self.counters.dumps(),
                           self.checkpoint_request)
    self.log_info('Inference checkpoint saved to %s.', self.checkpoint_path)

  def save_checkpoint(self, path: str) -> None:
    """Writes the state (no object in flight) to `path`, atomically."""
    seed_state = self.seed_policy.get_state() if self.seed_policy is not None else None
    checkpoint_file.save(path, self.state, self.grower.object_map, self.grower.progress(0),
                         seed_state, self.counters.dumps(), self.checkpoint_request)

  def restore_checkpoint(self, path: str) -> int:
    """Loads the state saved at `path`; returns the FOV count of the object in flight.

    `segment_all` then continues where the checkpoint left off.
    """
    checkpoint = checkpoint_file.load(path, self.shape)
    try:
      self.grower.restore(checkpoint.object_map, checkpoint.progress)
    except ValueError as e:  # A movement policy refusing its saved state.
      raise results.ResultFileError(
          f"{path} (entry 'movement_policy') is not a state the movement policy can take: "
          f'{e}; remove the file to start this subvolume afresh') from None
    self.state.take_over(checkpoint.state)
    self.counters.loads(checkpoint.counters)
    self.counters['voxels-segmented'].Set(int(np.sum(self.state.segmentation > 0)))
    self._resume = (checkpoint.seed_policy_state, checkpoint.progress)
    self.log_info('Inference checkpoint restored from %s.', path)
    return checkpoint.progress.num_iters

  # -- notebooks ------------------------------------------------------------------

  def visualize_state(self, pos: Optional[Position] = None) -> np.ndarray:
    """An RGB picture of ortho planes of the object map through `pos` (default: centre)."""
    if pos is None:
      pos = tuple(s // 2 for s in self.shape)
    return visualization.visualize_state(self.grower.object_map, pos, self.movement_policy)
