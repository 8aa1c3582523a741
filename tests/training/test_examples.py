"""In-training FOV movement: sizes, seed canvases, policies and prediction feedback."""

import numpy as np
import pytest

from ffn.training import examples
from ffn.training.model import ModelInfo
from ffn.utils import probability

INFO = ModelInfo(deltas=(2, 1, 1), pred_mask_size=(7, 5, 3), input_seed_size=(7, 5, 3),
                 input_image_size=(7, 5, 3))


def test_training_sizes():
  fixed = examples.training_sizes(INFO, 'fixed', 1)
  assert fixed.image == fixed.label == fixed.canvas == fixed.eval == (11, 7, 5)
  pred = examples.training_sizes(INFO, 'max_pred_moves', 1)
  assert pred.image == pred.canvas == (15, 9, 7) and pred.eval == (11, 7, 5)
  with pytest.raises(ValueError, match='fov_policy'):
    examples.training_sizes(INFO, 'no_step', 1)


def test_seed_canvas():
  canvas = examples.make_seed_canvas((5, 7, 11), 0.05)
  assert canvas.shape == (5, 7, 11, 1) and canvas.dtype == np.float32
  assert canvas[2, 3, 5, 0] == pytest.approx(probability.logit(0.95), rel=1e-5)
  assert np.sum(canvas > 0) == 1
  assert canvas[0, 0, 0, 0] == pytest.approx(probability.logit(0.05), rel=1e-5)


def test_fixed_offsets_checks_current_canvas_at_each_target():
  canvas = examples.make_seed_canvas((5, 7, 11), 0.05)
  shifts = [(2, 0, 0), (0, -1, 0), (0, 0, 1)]
  offsets = examples.fixed_offsets(canvas, shifts, probability.logit(0.9))
  assert next(offsets) == (0, 0, 0)
  canvas[2, 2, 5] = 5.0   # y - 1: becomes valid after the first step.
  canvas[3, 3, 5] = 5.0   # z + 1
  assert list(offsets) == [(0, -1, 0), (0, 0, 1)]


class _FakeExamples:
  """Examples whose labels tell them apart."""

  def __init__(self, sizes):
    self.count = 0
    self.sizes = sizes

  def __call__(self):
    self.count += 1
    shape = self.sizes.image[::-1] + (1,)
    return {'image': np.full(shape, self.count, np.float32),
            'labels': np.full(shape, 0.95, np.float32),
            'weights': np.ones(shape, np.float32)}


def test_batch_feeder_feeds_predictions_back():
  sizes = examples.training_sizes(INFO, 'fixed', 1)
  source = _FakeExamples(sizes)
  finished = []
  feeder = examples.BatchFeeder(source, INFO, batch_size=2, shifts=[(2, 0, 0), (-2, 0, 0)],
                                on_example_done=lambda ex, canvas: finished.append(canvas))
  seed, image, labels, weights = feeder.next_batch()
  assert seed.shape == image.shape == labels.shape == (2, 3, 5, 7, 1)
  assert image[0].max() == 1 and image[1].max() == 2  # Independent examples.
  # Predict "inside" everywhere: every shift becomes valid and sees the prediction.
  feeder.update(np.full(seed.shape, 4.0, np.float32))
  seed, _, _, _ = feeder.next_batch()
  assert [s.offset for s in feeder.slots] == [(2, 0, 0), (2, 0, 0)]
  # The FOV moved by +2 in x: its left part overlaps the first prediction.
  assert np.all(seed[:, :, :, :5] == 4.0) and np.all(seed[:, :, :, 5:] < 0)
  feeder.update(np.full(seed.shape, 6.0, np.float32))
  feeder.next_batch()
  feeder.update(np.full(seed.shape, 7.0, np.float32))
  assert not finished
  _, image, _, _ = feeder.next_batch()  # Both examples are done; new ones start.
  assert len(finished) == 2 and image[0].max() == 3
  canvas = finished[0]
  assert canvas[2, 3, 1, 0] == 7.0 and canvas[2, 3, 9, 0] == 6.0


def test_max_pred_offsets_follow_face_maxima():
  info = ModelInfo(deltas=(2, 2, 2), pred_mask_size=(5, 5, 5), input_seed_size=(5, 5, 5),
                   input_image_size=(5, 5, 5))
  sizes = examples.training_sizes(info, 'max_pred_moves', 1)
  canvas = examples.make_seed_canvas(sizes.canvas[::-1], 0.05)
  offsets = examples.max_pred_offsets(canvas, info, sizes, probability.logit(0.9))
  assert next(offsets) == (0, 0, 0)
  center = np.array(canvas.shape[:3]) // 2
  canvas[tuple(center + [0, 1, 2])] = 3.0  # The +x face, one voxel up in y.
  assert next(offsets) == (2, 1, 0)
  assert next(offsets, None) is None  # Nothing else crosses the threshold.


def test_feeder_stops_when_no_example_yields_a_fov(monkeypatch):
  # A threshold above the seed's starting value moves nowhere, not even to the origin;
  # the settings refuse such a threshold, and the feeder stops rather than spin.
  sizes = examples.training_sizes(INFO, 'fixed', 1)
  source = _FakeExamples(sizes)
  monkeypatch.setattr(examples, 'MAX_EMPTY_EXAMPLES', 20)
  feeder = examples.BatchFeeder(source, INFO, batch_size=1, threshold=0.99)
  with pytest.raises(ValueError, match='20 training examples in a row gave no field of view'):
    feeder.next_batch()
  assert examples.BatchFeeder(_FakeExamples(sizes), INFO, batch_size=1,
                              threshold=examples.INIT_ACTIVATION).next_batch()
