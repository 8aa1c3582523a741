"""Objects grown at once (InferenceRequest.concurrent_objects) give the one-at-a-time result."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from ffn.inference import inference_pb2
from ffn.inference.engines import executor
from ffn.inference.growing import canvas as canvas_lib
from ffn.inference.growing import driver as driver_lib
from ffn.inference.growing import growth_record
from ffn.inference.growing import pool as object_pool
from ffn.inference.policies import movement
from ffn.inference.policies import seed
from ffn.inference.request import plan
from ffn.inference.request import settings_check

import synthetic_ffn


class _ListedSeeds(seed.BaseSeedPolicy):
  """Seeds in the order of `coords` (zyx)."""

  def __init__(self, canvas, coords=(), **kwargs):
    super().__init__(canvas, **kwargs)
    self._listed = coords

  def init_coords(self) -> None:
    self.coords = np.array(self._listed, np.int64).reshape(-1, 3)


def _listed(coords):
  return lambda canvas: _ListedSeeds(canvas, coords)


def _options():
  options = inference_pb2.InferenceOptions(
      init_activation=0.95, pad_value=0.05, move_threshold=0.9, segment_threshold=0.6,
      min_segment_size=30)
  options.min_boundary_dist.x = options.min_boundary_dist.y = options.min_boundary_dist.z = 1
  return options


def _canvas(image, growers=1, model=None, **kwargs):
  """A canvas over `image` growing `growers` objects at once (1: one at a time)."""
  model = model or synthetic_ffn.NumpyModel()
  norm = (image.astype(np.float32) - synthetic_ffn.IMAGE_MEAN) / synthetic_ffn.IMAGE_STDDEV
  object_executors = ([executor.DirectExecutor(model.predict_logits) for _ in range(growers)]
                      if growers > 1 else ())
  return canvas_lib.Canvas(model.info, executor.DirectExecutor(model.predict_logits), norm,
                           plan.CanvasOptions.from_proto(_options()),
                           object_executors=object_executors, **kwargs)


def _segment(image, seed_policy, growers=1, **kwargs):
  canvas = _canvas(image, growers, **kwargs)
  canvas.segment_all(seed_policy=seed_policy)
  return canvas


def _assert_same_result(a, b):
  np.testing.assert_array_equal(a.segmentation, b.segmentation)
  np.testing.assert_array_equal(a.seg_prob, b.seg_prob)
  assert {k: (v.start_zyx, v.iters) for k, v in a.origins.items()} == {
      k: (v.start_zyx, v.iters) for k, v in b.origins.items()}
  assert a.overlaps.keys() == b.overlaps.keys()
  for sid in a.overlaps:
    np.testing.assert_array_equal(a.overlaps[sid], b.overlaps[sid])


def _two_rooms():
  """Two bright boxes behind a 3-voxel dark wall (x 16-18), zyx (12, 24, 40).

  An object grown in the right room sees the left room's edge across the wall
  and takes it into its segment, without its FOV ever going there.
  """
  image = np.full((12, 24, 40), synthetic_ffn.DARK, np.uint8)
  image[3:9, 4:20, 4:16] = synthetic_ffn.BRIGHT
  image[3:9, 4:20, 19:36] = synthetic_ffn.BRIGHT
  return image


def test_object_steered_by_an_earlier_one_is_grown_again():
  image = _two_rooms()
  first, second = (6, 12, 29), (6, 12, 9)
  one_at_a_time = _segment(image, _listed([first, second]))
  concurrent = _segment(image, _listed([first, second]), growers=2)
  _assert_same_result(one_at_a_time, concurrent)
  # Grown alone, the second object takes another course: its FOV goes where
  # the first object's segment is, which one at a time forbids.
  alone = _segment(image, _listed([second]))
  assert alone.origins[1].iters != one_at_a_time.origins[2].iters
  # Grown ahead of the first, the second object is finished and grown again, or
  # stopped once the first is added; or it starts late enough to see the first
  # (thread timing decides). Either way the result must be one at a time's.


def _seed(pos):
  """A seed with no policy behind it."""
  return driver_lib.Seed(pos, None, None)


def _worker(canvas, executor_=None):
  """A worker of `canvas`'s pool (its own object map), on `executor_` (default: the canvas's)."""
  return canvas._worker((executor_ or canvas.executor).client())  # pylint: disable=protected-access


def _try(canvas, pos):
  """Grows and adds the object of `pos` one at a time, as the driver does."""
  if canvas.driver.take(_seed(pos)):
    canvas.driver.grow_and_add(canvas.grower, _seed(pos))


def _grown_ahead(canvas, pos):
  """The object a worker of `canvas` grows from `pos` against the segmentation now."""
  # pylint: disable-next=protected-access
  return object_pool._grow(_worker(canvas), object_pool._Seed(_seed(pos)), canvas.counters)


def test_object_grown_again_replays_its_course_up_to_the_first_changed_read():
  image = _two_rooms()
  first, second = (6, 12, 29), (6, 12, 9)
  one_at_a_time = _segment(image, _listed([first, second]))
  model = synthetic_ffn.NumpyModel()
  canvas = _canvas(image, model=model)
  ahead = _grown_ahead(canvas, second)  # Before the first object is there.
  _try(canvas, first)
  assert object_pool.steered(canvas.segmentation, ahead.record)

  calls = model.calls
  # pylint: disable-next=protected-access
  object_pool._add_in_order(canvas.driver, _worker(canvas), _seed(second), ahead)
  assert canvas.counters['objects-regrown'].value == 1
  _assert_same_result(one_at_a_time, canvas)
  replayed = canvas.counters['fovs-replayed'].value
  computed = model.calls - calls
  assert replayed > 0 and computed > 0
  assert replayed + computed == one_at_a_time.origins[2].iters


def test_steered_grower_starts_again_replaying_what_still_holds():
  image = _two_rooms()
  first, second = (6, 12, 29), (6, 12, 9)
  one_at_a_time = _segment(image, _listed([first, second]))
  canvas = _canvas(image)
  model = synthetic_ffn.NumpyModel()
  steer_at = 3
  seed_ahead = object_pool._Seed(_seed(second))  # pylint: disable=protected-access

  def predict(image_fov, seed_fov):
    if model.calls == steer_at:
      # The first object is added while the second grows, and the pool sees it.
      _try(canvas, first)
      worker.stop.ask(restart=True)
    return model.predict_logits(image_fov, seed_fov)

  worker = _worker(canvas, executor.DirectExecutor(predict))
  grown = object_pool._grow(worker, seed_ahead, canvas.counters)  # pylint: disable=protected-access
  obj = grown.obj
  assert canvas.counters['objects-restarted'].value == 1
  replayed = canvas.counters['fovs-replayed'].value
  assert replayed > 0
  # The first try ran steer_at + 1 FOVs; the second, only those it did not replay.
  assert model.calls == steer_at + 1 + obj.num_iters - replayed
  assert not object_pool.steered(canvas.segmentation, grown.record)
  assert canvas.driver.take(_seed(second))
  canvas.driver.add(obj, _seed(second))
  _assert_same_result(one_at_a_time, canvas)


def _waiting_seed(nbytes):
  record = growth_record.GrowthRecord()
  record.computed_output(np.zeros(nbytes // 4, np.float32))
  return object_pool._Seed(_seed((0, 0, 0)), record=record)  # pylint: disable=protected-access


def test_records_of_waiting_seeds_are_dropped_latest_first_over_the_budget():
  seeds = [_waiting_seed(400) for _ in range(4)]
  growing = _waiting_seed(400)
  growing.future = object()  # Growing or grown: its record is not a waiting one.
  seeds.insert(1, growing)
  object_pool.drop_records_over(seeds, 1000)
  assert [s.record is not None for s in seeds] == [True, True, True, False, False]
  object_pool.drop_records_over(seeds, 0)
  assert [s.record is not None for s in seeds] == [False, True, False, False, False]


def test_seeds_ruled_out_do_not_count_as_seeds_in_hand():
  image, _ = synthetic_ffn.blob_volume()
  canvas = _canvas(image, growers=2)
  canvas.segmentation[:, :, :24] = 1
  # First every seed in the segmented half (x < 24), then the rest.
  positions = sorted(((10, y, x) for y in range(8, 32) for x in range(6, 42)),
                     key=lambda p: p[2] >= 24)
  # pylint: disable-next=protected-access
  pool = object_pool._Pool(canvas.driver, (_seed(p) for p in positions), [], threads=None)
  pool.fill()
  live = [s.pos for s in pool.queue if not s.ruled_out]
  assert len(live) == object_pool._SEEDS_IN_HAND  # pylint: disable=protected-access
  assert len(pool.queue) > 24 * 18 and all(x > 24 for _, _, x in live)


def test_seed_covered_by_an_earlier_object_is_skipped():
  image, _ = synthetic_ffn.blob_volume()
  seeds = _listed([(10, 10, 6), (10, 10, 18)])  # both in blob 1 (x 4-19)
  one_at_a_time = _segment(image, seeds)
  concurrent = _segment(image, seeds, growers=2)
  _assert_same_result(one_at_a_time, concurrent)
  assert len(concurrent.origins) == 1


def _random_rooms(shape=(16, 40, 44), count=40, seed_value=3, sizes=(3, 12)):
  """Bright boxes of random sizes on dark, many touching or a thin wall apart."""
  rng = np.random.default_rng(seed_value)
  image = np.full(shape, synthetic_ffn.DARK, np.uint8)
  for _ in range(count):
    size = rng.integers(*sizes, size=3)
    start = [rng.integers(0, s - n) for s, n in zip(shape, size)]
    image[tuple(slice(a, a + n) for a, n in zip(start, size))] = synthetic_ffn.BRIGHT
  return image


@pytest.mark.parametrize('growers', [2, 3])
def test_many_objects_equal_one_at_a_time(growers):
  image = _random_rooms()
  grid = lambda canvas: seed.PolicyGrid3d(canvas, step=3, offsets=(1,))
  one_at_a_time = _segment(image, grid)
  concurrent = _segment(image, grid, growers=growers)
  assert len(one_at_a_time.origins) > 10
  # Which objects are grown ahead, and redone, depends on thread timing; the
  # result must not.
  _assert_same_result(one_at_a_time, concurrent)


def test_peaks_on_a_non_cubic_volume_equal_one_at_a_time():
  image = _random_rooms(shape=(14, 30, 50), count=30, seed_value=3, sizes=(3, 9))
  one_at_a_time = _segment(image, seed.PolicyPeaks)
  concurrent = _segment(image, seed.PolicyPeaks, growers=2)
  assert len(one_at_a_time.origins) > 5
  _assert_same_result(one_at_a_time, concurrent)


class _Interrupt(Exception):
  pass


class _FailingModel(synthetic_ffn.NumpyModel):
  """Fails once `fail_after` FOVs have been computed, in whichever thread asks next."""

  def __init__(self, fail_after):
    super().__init__()
    self.fail_after = fail_after

  def predict_logits(self, image, seed_logits):
    if self.calls >= self.fail_after:
      raise _Interrupt()
    return super().predict_logits(image, seed_logits)


@pytest.mark.parametrize('fail_after', [300, 700])
def test_checkpoint_of_a_concurrent_run_resumes_to_the_same_result(tmp_path, fail_after):
  image = _random_rooms()
  grid = lambda canvas: seed.PolicyGrid3d(canvas, step=3, offsets=(1,))
  reference = _segment(image, grid)

  path = str(tmp_path / 'seg.cpoint')
  # A checkpoint at every point where one may be taken.
  checkpointing = dict(checkpoint_path=path, checkpoint_interval_sec=1e-9)
  failing = _canvas(image, 2, model=_FailingModel(fail_after), **checkpointing)
  with pytest.raises(_Interrupt):
    failing.segment_all(seed_policy=grid)
  resumed = _canvas(image, 2, **checkpointing)
  resumed.restore_checkpoint(path)
  assert len(resumed.origins) < len(reference.origins)
  resumed.segment_all(seed_policy=grid)
  _assert_same_result(reference, resumed)


def _request(**fields):
  fields.setdefault('engine', inference_pb2.InferenceRequest.OPENVINO)
  request = inference_pb2.InferenceRequest(
      image=inference_pb2.DecoratedVolume(hdf5='image.h5:raw'), image_stddev=1,
      segmentation_output_dir='out', **fields)
  request.inference_options.CopyFrom(_options())
  return request


def test_plan_takes_concurrent_objects():
  assert plan.from_request(_request()).concurrent_objects == 1
  assert plan.from_request(_request(concurrent_objects=0)).concurrent_objects == 1
  assert plan.from_request(_request(concurrent_objects=3)).concurrent_objects == 3


class _OwnNext(seed.BaseSeedPolicy):

  def __next__(self):
    raise StopIteration()


@pytest.mark.parametrize('fields,message', [
    ({'concurrent_objects': -1}, 'concurrent_objects is -1'),
    ({'concurrent_objects': 2, 'engine': inference_pb2.InferenceRequest.TENSORFLOW},
     r'engine: OPENVINO \(got TENSORFLOW\)'),
    ({'concurrent_objects': 2, 'batch_size': 4}, 'needs batch_size 1'),
    ({'concurrent_objects': 2, 'concurrent_requests': 2}, 'needs batch_size 1'),
    ({'concurrent_objects': 2, 'seed_policy': f'{__name__}._OwnNext'}, '_OwnNext yields'),
])
def test_bad_concurrent_objects_is_one_clear_error(fields, message):
  with pytest.raises(ValueError, match=message):
    plan.from_request(_request(**fields))


def test_concurrent_objects_does_not_change_the_result_settings():
  assert not settings_check.differences(_request(), _request(concurrent_objects=2))


class _ChosenSeeds(seed.BaseSeedPolicy):
  """Yields its seeds itself (overrides __next__), as a policy choosing seeds on the fly may."""

  def __init__(self, canvas, **kwargs):
    super().__init__(canvas, **kwargs)
    self._left = [(10, 10, 6), (10, 30, 35)]

  def __next__(self):
    if not self._left:
      raise StopIteration()
    return self._left.pop(0)


def test_canvas_with_a_policy_choosing_seeds_grows_one_at_a_time(caplog):
  image, _ = synthetic_ffn.blob_volume()
  caplog.set_level('WARNING')
  concurrent = _segment(image, _ChosenSeeds, growers=2)
  assert any('growing one object at a time' in r.getMessage() for r in caplog.records)
  _assert_same_result(_segment(image, _ChosenSeeds), concurrent)
  assert len(concurrent.origins) == 2


class _FaceNeighbourPolicy(movement.BaseMovementPolicy):
  """Moves by `deltas` to the six face neighbours of every FOV, breadth first.

  Like every movement policy it sees the subvolume only through its grower:
  `is_valid_pos` (which asks the grower's `is_free`) and the object map.
  """

  def __init__(self, grower, deltas=(1, 2, 2), score_threshold=0.0):
    super().__init__(grower, collections.deque(), deltas)
    self.score_threshold = score_threshold
    self._done = set()

  def reset_state(self, start_pos):
    self.scored_coords = collections.deque()
    self._done = set()

  def __next__(self):
    while self.scored_coords:
      _, pos = self.scored_coords.popleft()
      if pos not in self._done and self.canvas.is_valid_pos(pos):
        return pos
    raise StopIteration()

  def update(self, prob_map, position):
    self._done.add(tuple(position))
    for axis in range(3):
      for sign in (-1, 1):
        step = np.zeros(3, np.int64)
        step[axis] = sign * self.deltas[axis]
        self.scored_coords.append((1.0, tuple(int(v) for v in np.add(position, step))))

  def get_state(self):
    return [(self.scored_coords, self._done)]

  def restore_state(self, state):
    self.scored_coords, self._done = collections.deque(state[0][0]), set(state[0][1])


def test_a_movement_policy_of_its_own_grows_objects_at_once_exactly():
  image = _random_rooms(shape=(12, 32, 36), count=8, seed_value=5, sizes=(3, 8))
  grid = lambda canvas: seed.PolicyGrid3d(canvas, step=4, offsets=(1,))
  policy = lambda grower: _FaceNeighbourPolicy(grower, deltas=(1, 2, 2))
  one_at_a_time = _segment(image, grid, movement_policy_fn=policy)
  concurrent = _segment(image, grid, growers=2, movement_policy_fn=policy)
  assert len(one_at_a_time.origins) >= 4
  _assert_same_result(one_at_a_time, concurrent)
