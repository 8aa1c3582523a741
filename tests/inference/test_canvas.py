"""Tests of the Canvas with a hand-built numpy network on synthetic blobs."""

from __future__ import annotations

import numpy as np
import pytest

from ffn.inference import inference_pb2
from ffn.inference.engines import executor
from ffn.inference.growing import canvas as canvas_lib
from ffn.inference.growing import checkpoint_file as canvas_checkpoint
from ffn.inference.growing import state as state_lib
from ffn.inference.policies import seed
from ffn.inference.request import plan
from ffn.utils import probability

import synthetic_ffn


def _options(**overrides):
  options = inference_pb2.InferenceOptions(
      init_activation=0.95, pad_value=0.05, move_threshold=0.9, segment_threshold=0.6,
      min_segment_size=30)
  options.min_boundary_dist.x = options.min_boundary_dist.y = options.min_boundary_dist.z = 1
  for key, value in overrides.items():
    setattr(options, key, value)
  return options


def _canvas(image=None, model=None, options=None, **kwargs):
  if image is None:
    image, _ = synthetic_ffn.blob_volume()
  model = model or synthetic_ffn.NumpyModel()
  norm = (image.astype(np.float32) - synthetic_ffn.IMAGE_MEAN) / synthetic_ffn.IMAGE_STDDEV
  canvas = canvas_lib.Canvas(model.info, executor.DirectExecutor(model.predict_logits), norm,
                             plan.CanvasOptions.from_proto(options or _options()), **kwargs)
  return canvas, model


def _grid_seeds(canvas):
  return seed.PolicyGrid3d(canvas, step=4, offsets=(2,))


def test_segment_at_alone_grows_one_object():
  canvas, model = _canvas(keep_history=True)
  start = (10, 10, 12)  # inside blob 1 (z 3-17, y 4-16, x 4-20)
  iters = canvas.segment_at(start)
  assert iters == model.calls > 3
  prob = probability.expit(canvas.object_map)
  _, labels = synthetic_ffn.blob_volume()
  seen = ~np.isnan(canvas.object_map)
  # Everything the FOV saw is right: blob 1 in, the rest out.
  assert np.all((prob[seen] >= 0.5) == (labels[seen] == 1))
  assert len(canvas.history) == iters
  # Every FOV centre visited lies inside the object.
  assert all(labels[p] == 1 for p in canvas.history)
  # NaN (unexplored) voxels are fed to the model as pad_value, never as NaN.
  pad = np.float32(probability.logit(0.05))
  assert not any(np.isnan(s).any() for s in model.seeds_seen)
  assert np.any(model.seeds_seen[0] == pad)
  # And the canvas keeps them NaN: the far blob was never seen.
  assert np.all(np.isnan(canvas.object_map[:, 24:, 26:]))


def test_segment_at_does_not_start_from_a_dark_voxel():
  canvas, model = _canvas()
  assert canvas.segment_at((10, 20, 22)) == 1  # one FOV, the seed then dies
  assert canvas.object_map[10, 20, 22] < canvas.options.move_threshold


def test_segment_all_creates_segments_and_markers():
  canvas, _ = _canvas()
  canvas.segment_all(seed_policy=_grid_seeds)
  _, labels = synthetic_ffn.blob_volume()
  seg = canvas.segmentation
  assert sorted(canvas.origins) == list(range(1, len(canvas.origins) + 1))
  blobs_hit = set()
  for sid, origin in canvas.origins.items():
    blob = labels[origin.start_zyx]
    blobs_hit.add(blob)
    # Each segment lies inside the blob of its seed.
    assert np.all(labels[seg == sid] == blob)
    assert origin.iters > 0
    assert canvas.overlaps[sid].shape[0] == 2
  # The small blob is below min_segment_size; the two large ones are segmented.
  assert blobs_hit == {1, 2}
  assert np.mean(seg[labels == 1] > 0) > 0.5 and np.mean(seg[labels == 2] > 0) > 0.5
  assert np.any(seg == -1)  # failed seeds are marked
  assert canvas.counters['voxels-segmented'].value == np.sum(seg > 0)


def test_min_segment_size_and_boundary_dist():
  canvas, _ = _canvas(options=_options(min_segment_size=10 ** 6))
  canvas.segment_all(
      seed_policy=lambda c: seed.PolicyGrid3d(c, step=8, offsets=(6,)))
  assert not canvas.origins and not np.any(canvas.segmentation > 0)

  # A seed next to an existing segment is refused (marked -1) by min_boundary_dist.
  canvas, _ = _canvas()
  canvas.segmentation[10, 10, 13] = 5
  class _One(seed.BaseSeedPolicy):
    def init_coords(self):
      self.coords = np.array([(10, 10, 12)])
  canvas.segment_all(seed_policy=_One)
  assert canvas.segmentation[10, 10, 12] == -1 and not canvas.origins


def test_disconnected_seed_freezing():
  canvas, _ = _canvas(options=_options(disco_seed_threshold=0.0))
  pos = (10, 10, 12)
  sel = tuple(slice(p - s // 2, p - s // 2 + s) for p, s in zip(pos, (5, 7, 9)))
  canvas.object_map[sel] = -3.0           # predicted background before ...
  canvas.object_map[sel][0, 0, 0] = np.nan  # ... except one never-seen voxel
  canvas.object_map[sel][1, 1, 1] = 1.0   # and one above 0.5
  logits = canvas.grower.update_at(pos)
  region = canvas.object_map[sel]
  # Bright voxels would now be +9 but stay frozen at their old background value,
  bright = synthetic_ffn.blob_volume()[0][sel] == synthetic_ffn.BRIGHT
  assert bright.all()
  assert region[2, 2, 2] == -3.0 and logits[2, 2, 2] == -3.0
  # except where the old value was NaN or >= 0.5.
  assert region[0, 0, 0] == pytest.approx(12 + probability.logit(0.05), rel=1e-5)
  assert region[1, 1, 1] == pytest.approx(13.0)

  # Negative disco_seed_threshold turns freezing off.
  canvas, _ = _canvas(options=_options(disco_seed_threshold=-1.0))
  canvas.object_map[sel] = -3.0
  canvas.grower.update_at(pos)
  assert canvas.object_map[pos] == pytest.approx(9.0)


def test_consistency_threshold_repeats_predictions():
  calls = {}
  for threshold in (0.0, 0.99, 1e-6):
    canvas, model = _canvas(options=_options(consistency_threshold=threshold))
    canvas.grower.update_at((10, 10, 12))
    calls[threshold] = model.calls
    if threshold == 1e-6:
      # Each repetition feeds the previous logits back: +12 per call on bright voxels.
      assert canvas.object_map[10, 10, 12] == pytest.approx(
          probability.logit(0.05) + 12 * model.calls, rel=1e-5)
  assert calls[0.0] == 1 and calls[0.99] == 1
  assert 2 < calls[1e-6] <= canvas_lib.MAX_SELF_CONSISTENT_ITERS


class _Interrupt(Exception):
  pass


class _FailingModel(synthetic_ffn.NumpyModel):
  """Raises after `fail_after` calls, as a killed process would stop.

  Just before its last successful call it makes the canvas's checkpoint
  interval elapse, so that the checkpoint is the one following that FOV.
  """

  def __init__(self, fail_after):
    super().__init__()
    self.fail_after = fail_after
    self.canvas = None

  def predict_logits(self, image, seed_logits):
    if self.calls >= self.fail_after:
      raise _Interrupt()
    if self.calls == self.fail_after - 1:
      self.canvas.checkpointer.last = 0.0
    return super().predict_logits(image, seed_logits)


@pytest.mark.parametrize('fail_after', [1, 7, 30, 61])
def test_checkpoint_resume_in_flight_equals_uninterrupted(tmp_path, fail_after):
  reference, ref_model = _canvas()
  reference.segment_all(seed_policy=_grid_seeds)
  assert ref_model.calls > fail_after

  path = str(tmp_path / 'seg.cpoint')
  failing = _FailingModel(fail_after)
  canvas, _ = _canvas(model=failing, checkpoint_path=path, checkpoint_interval_sec=1e6)
  failing.canvas = canvas
  with pytest.raises(_Interrupt):
    canvas.segment_all(seed_policy=_grid_seeds)

  resumed, model = _canvas(checkpoint_path=path, checkpoint_interval_sec=1e6)
  resumed.restore_checkpoint(path)
  resumed.segment_all(seed_policy=_grid_seeds)
  np.testing.assert_array_equal(resumed.segmentation, reference.segmentation)
  np.testing.assert_array_equal(resumed.seg_prob, reference.seg_prob)
  assert {k: (v.start_zyx, v.iters) for k, v in resumed.origins.items()} == {
      k: (v.start_zyx, v.iters) for k, v in reference.origins.items()}
  # Nothing was computed twice: the FOVs before the checkpoint were not rerun.
  assert model.calls == ref_model.calls - fail_after


def test_init_segmentation_from_3d_and_4d_volumes():
  for volume in (np.zeros((20, 40, 48), np.uint64), np.zeros((1, 20, 40, 48), np.uint64)):
    labels = volume[0] if volume.ndim == 4 else volume
    labels[2:5, 2:5, 2:5] = 1000
    labels[6:9, 6:9, 6:9] = 77
    canvas, _ = _canvas()
    canvas.init_segmentation_from_volume(volume, (0, 0, 0), (20, 40, 48))
    assert canvas.segmentation[3, 3, 3] == canvas.local_id(1000) == 2
    assert canvas.segmentation[7, 7, 7] == canvas.local_id(77) == 1
    assert canvas.seg_prob[3, 3, 3] == 255 and canvas.seg_prob[0, 0, 0] == 0
    assert canvas.state.max_id == 2


def test_visualize_state_is_an_rgb_picture():
  canvas, _ = _canvas()
  canvas.segment_at((10, 10, 12))
  shown = []
  picture = canvas.visualize_state((10, 10, 12))
  assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
  assert picture.shape[:2] == (40 + 1 + 20, 48 + 1 + 20)
  assert tuple(picture[10, 12]) == (255, 0, 0)
  canvas.segment_at((10, 30, 35), dynamic_image=shown.append, vis_update_every=1)
  assert shown and shown[0].shape == picture.shape


def test_state_round_trips_through_a_checkpoint_file(tmp_path):
  canvas, _ = _canvas(keep_history=True)
  canvas.segment_all(seed_policy=_grid_seeds)
  path = str(tmp_path / 'c.cpoint')
  canvas.save_checkpoint(path)

  loaded = canvas_checkpoint.load(path)
  assert loaded.progress.num_iters == 0
  other, _ = _canvas(keep_history=True)
  assert other.restore_checkpoint(path) == 0
  np.testing.assert_array_equal(other.segmentation, canvas.segmentation)
  np.testing.assert_array_equal(other.seed, canvas.object_map)
  np.testing.assert_array_equal(other.seg_prob, canvas.seg_prob)
  assert other.origins == canvas.origins and other.history == canvas.history
  assert other.state.max_id == canvas.state.max_id == max(canvas.origins)
  assert other.counters['voxels-segmented'].value == np.sum(canvas.segmentation > 0)
  # One field list: the file holds every field of the state.
  assert set(canvas_checkpoint.STATE_KEYS) == set(state_lib.FIELDS)


def test_a_2019_checkpoint_keeps_what_it_lacks():
  canvas, _ = _canvas()
  canvas.segmentation[1, 2, 3] = 7
  old = state_lib.SubvolumeState(segmentation=canvas.segmentation.copy(), seg_prob=None,
                                 origins={}, overlaps=None, global_to_local_ids=None,
                                 max_id=None)
  other, _ = _canvas()
  other.state.overlaps = {1: 'kept'}
  other.state.take_over(old)
  assert other.state.max_id == 7  # from the segmentation
  assert other.state.overlaps == {1: 'kept'}


def test_next_object_starts_from_a_clear_object_map():
  canvas, _ = _canvas()
  canvas.segment_at((10, 10, 12))
  assert np.sum(~np.isnan(canvas.object_map)) > 100
  canvas.grower.start_object_map((10, 30, 35))
  seen = ~np.isnan(canvas.object_map)
  assert np.sum(seen) == 1 and seen[10, 30, 35]
  canvas.object_map[2:5, 2:5, 2:5] = 1.0  # Written from outside the canvas:
  canvas.grower.clear()
  assert np.all(np.isnan(canvas.object_map))


class _SpyExecutor(executor.DirectExecutor):
  """Records when clients join and leave."""

  def __init__(self, predict_fn):
    super().__init__(predict_fn)
    self.events = []

  def start_client(self):
    self.events.append('start')
    return super().start_client()

  def finish_client(self, client_id):
    self.events.append('finish')
    super().finish_client(client_id)


def test_a_canvas_joins_the_executor_at_its_first_fov_and_leaves_at_the_end():
  model = synthetic_ffn.NumpyModel()
  spy = _SpyExecutor(model.predict_logits)
  image, _ = synthetic_ffn.blob_volume()
  norm = (image.astype(np.float32) - synthetic_ffn.IMAGE_MEAN) / synthetic_ffn.IMAGE_STDDEV
  canvas = canvas_lib.Canvas(model.info, spy, norm, plan.CanvasOptions.from_proto(_options()))
  canvas.segment_all(seed_policy=_grid_seeds)
  # One client for the whole subvolume: batches of several canvases wait for each one.
  assert spy.events == ['start', 'finish'] and model.calls > 10
  spy.events.clear()
  fresh = canvas_lib.Canvas(model.info, spy, norm, plan.CanvasOptions.from_proto(_options()))
  fresh.segment_at((10, 10, 12))
  fresh.segment_at((10, 30, 35))
  assert spy.events == ['start', 'finish'] * 2
