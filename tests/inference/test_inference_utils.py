"""Tests of the inference counters and timers."""

from __future__ import annotations

import io
import json
import threading
import time

from google.protobuf import text_format
import numpy as np

from ffn.inference import inference_pb2
from ffn.inference import inference_utils
from ffn.inference.request import runner as runner_lib

import synthetic_ffn


def test_stat_counter_operations():
  counter = inference_utils.StatCounter(name='c')
  counter.Increment()
  counter.IncrementBy(4.9)  # Truncated to an int, as upstream.
  assert counter.value == 5
  counter.Set(2)
  assert counter.value == 2 and counter.Get() == 2


def test_counters_create_on_access_and_reset():
  counters = inference_utils.Counters()
  assert 'a' not in counters
  counters['a'].Increment()
  assert counters['a'] is counters['a']
  assert counters['a'].value == 1
  counters.reset()
  assert 'a' not in counters
  assert counters['a'].value == 0


def test_dump_dumps_loads(tmp_path):
  counters = inference_utils.Counters()
  counters['b-calls'].IncrementBy(3)
  counters['a-time-ms'].IncrementBy(12)
  path = tmp_path / 'sub' / 'counters.txt'
  counters.dump(str(path))
  assert path.read_text() == 'a-time-ms: 12\nb-calls: 3\n'
  buffer = io.StringIO()
  counters.dump(buffer)
  assert buffer.getvalue() == path.read_text()

  state = counters.dumps()
  assert json.loads(state) == {'a-time-ms': 12, 'b-calls': 3}
  restored = inference_utils.Counters()
  restored['b-calls'].IncrementBy(100)
  restored.loads(state)
  assert restored.as_dict() == {'a-time-ms': 12, 'b-calls': 3}


def test_sub_counters_add_into_parent():
  parent = inference_utils.Counters()
  sub = parent.get_sub_counters()
  sub['x'].IncrementBy(2)
  sub['x'].Set(5)
  assert sub['x'].value == 5
  assert parent['x'].value == 5
  parent['y'].Increment()
  assert 'y' not in sub


def test_timer_counter_counts_calls_and_time():
  counters = inference_utils.Counters()
  for _ in range(2):
    with inference_utils.timer_counter(counters, 'work'):
      time.sleep(0.02)
  assert counters['work-calls'].value == 2
  assert 35 <= counters['work-time-ms'].value < 2000


def test_timer_counter_counts_on_exception():
  counters = inference_utils.Counters()
  try:
    with inference_utils.timer_counter(counters, 'fail'):
      raise RuntimeError('boom')
  except RuntimeError:
    pass
  assert counters['fail-calls'].value == 1


def test_timed_iter():
  counters = inference_utils.Counters()
  items = list(inference_utils.TimedIter(iter([3, 1, 2]), counters, 'it'))
  assert items == [3, 1, 2]
  # Three items plus the final StopIteration call.
  assert counters['it-calls'].value == 4


def test_counters_are_thread_safe():
  counters = inference_utils.Counters()
  sub = counters.get_sub_counters()

  def work():
    for i in range(2000):
      sub[f'k{i % 7}'].Increment()
      counters['total'].IncrementBy(2)

  threads = [threading.Thread(target=work) for _ in range(8)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert counters['total'].value == 8 * 2000 * 2
  assert sum(sub[f'k{i}'].value for i in range(7)) == 8 * 2000
  assert sum(counters[f'k{i}'].value for i in range(7)) == 8 * 2000


def test_histogram_lut_of_two_level_image():
  reference = np.zeros((4, 10), np.uint8)
  reference[:2] = 50
  reference[2:] = 200
  lut = inference_utils.compute_histogram_lut(reference)
  assert lut.shape == (256,) and lut.dtype == np.uint8
  assert set(np.unique(lut).tolist()) == {50, 200}
  assert lut[0] == 50 and lut[255] == 200
  assert np.all(np.diff(lut.astype(int)) >= 0)


def test_match_histogram_takes_reference_levels_and_honours_mask():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, size=(3, 32, 40)).astype(np.uint8)
  lut = np.where(np.arange(256) < 128, 60, 190).astype(np.uint8)
  matched = image.copy()
  inference_utils.match_histogram(matched, lut)
  assert set(np.unique(matched).tolist()) <= {60, 190}
  # Roughly half of each slice falls on each side of the median.
  for z in range(3):
    assert 0.3 < np.mean(matched[z] == 60) < 0.7
  # A fully masked slice is left alone; the others are unaffected by it.
  mask = np.zeros(image.shape, bool)
  mask[1] = True
  masked = image.copy()
  inference_utils.match_histogram(masked, lut, mask=mask)
  np.testing.assert_array_equal(masked[1], image[1])
  np.testing.assert_array_equal(masked[0], matched[0])


def test_a_subvolume_times_segment_all_once(tmp_path):
  """segment_all-time-ms is the wall time of the segmentation, not counted twice over."""
  image, _ = synthetic_ffn.blob_volume((12, 24, 24), [((3, 6, 6), (9, 16, 16))])
  spec = synthetic_ffn.write_h5(tmp_path / 'image.h5', image)
  request = text_format.Parse(synthetic_ffn.request_text(spec, 'unused', str(tmp_path / 'out')),
                              inference_pb2.InferenceRequest())
  with runner_lib.Runner(request, model=synthetic_ffn.NumpyModel()) as runner:
    start = time.perf_counter()
    canvas = runner.run((0, 0, 0), (12, 24, 24))
    wall_ms = (time.perf_counter() - start) * 1000
  assert canvas.counters['segment_all-calls'].value == 1
  assert 0 < canvas.counters['segment_all-time-ms'].value <= wall_ms
