"""EvalTracker statistics and the summaries it writes."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from ffn.training import tracker as tracker_lib
from ffn.utils import probability


def _read_events(directory):
  """{tag: [values or image tensors]} from the event files under `directory`."""
  out = {}
  for path in tf.io.gfile.glob(f'{directory}/events.*'):
    for record in tf.data.TFRecordDataset(path):
      event = event_pb2.Event.FromString(record.numpy())
      for value in event.summary.value:
        out.setdefault(value.tag, []).append(tf.make_ndarray(value.tensor))
  return out


def test_counts_and_summaries(tmp_path):
  tracker = tracker_lib.EvalTracker((3, 3, 3))
  labels = np.full((5, 5, 5, 1), 0.05, np.float32)
  labels[:, :, 2:] = 0.95
  logits = np.full((5, 5, 5, 1), -3.0, np.float32)
  logits[:, 2:] = probability.logit(0.95)  # Half-right guess.
  weights = np.ones_like(labels)
  weights[2, 2, 2] = 0
  tracker.add_patch(labels, logits, weights)
  # In the central 3^3: truth is x in {1, 2} (18 voxels), prediction y in {1, 2}.
  assert (tracker.tp, tracker.fp, tracker.fn, tracker.tn) == (12, 6, 6, 3)
  scalars = tracker.scalars()
  assert scalars['eval/precision'] == pytest.approx(12 / 18)
  assert scalars['eval/recall'] == pytest.approx(12 / 18)
  assert scalars['eval/specificity'] == pytest.approx(3 / 9)
  assert scalars['eval/accuracy'] == pytest.approx(15 / 27)
  assert scalars['masked_voxel_fraction'] == pytest.approx(1 / 27)
  writer = tf.summary.create_file_writer(str(tmp_path))
  with writer.as_default():
    tracker.write_summaries(step=7)
  writer.close()
  assert tracker.scalars() == {}  # Reset after writing.
  events = _read_events(tmp_path)
  assert float(events['eval/f1'][0]) == pytest.approx(12 / 18)
  for plane in ('xy', 'xz', 'yz'):
    width, height, png = events[f'final_{plane}/0'][0]
    image = tf.io.decode_png(png).numpy()
    assert image.shape == (int(height), int(width), 1) == (3, 9, 1)


def test_training_writes_loss_learning_rate_and_histograms(tmp_path):
  from ffn.training import summaries
  writer = tf.summary.create_file_writer(str(tmp_path))
  with writer.as_default():
    summaries.scalar('learning_rate', 0.001, 3)
    summaries.histogram('seed_update/conv0_a/biases', np.zeros(32), 3)
    summaries.histogram('seed_update/conv0_a/weights', np.linspace(-1, 1, 100), 3)
  writer.close()
  events = _read_events(tmp_path)
  assert float(events['learning_rate'][0]) == pytest.approx(0.001)
  table = events['seed_update/conv0_a/weights'][0]
  assert table.shape == (30, 3) and table[:, 2].sum() == 100
  assert events['seed_update/conv0_a/biases'][0][:, 2].sum() == 32
