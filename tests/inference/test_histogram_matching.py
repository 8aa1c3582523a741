"""Histogram matching in the Runner: reference_histogram and histogram_masks."""

from __future__ import annotations

from google.protobuf import text_format
import numpy as np
import pytest

from ffn.inference import inference_pb2
from ffn.inference import inference_utils
from ffn.inference.request import histogram
from ffn.inference.request import runner as runner_lib

import synthetic_ffn

# Columns through all z, so that every slice has the same intensity distribution.
_BLOBS = [((0, 4, 4), (20, 16, 20)), ((0, 24, 26), (20, 36, 44)), ((0, 4, 30), (20, 9, 36))]


def _noisy_blobs() -> tuple[np.ndarray, np.ndarray]:
  image, labels = synthetic_ffn.blob_volume(blobs=_BLOBS)
  noise = np.random.RandomState(0).normal(0, 8, image.shape)
  return np.clip(image + noise, 0, 255).astype(np.uint8), labels


def _contrast_shifted(image: np.ndarray) -> np.ndarray:
  """Darker, flatter contrast: bright 200 becomes ~90, below the model's threshold."""
  return (image * 0.35 + 20).astype(np.uint8)


def _write_lut(path, image) -> str:
  np.savez(path, lut=inference_utils.compute_histogram_lut(image))
  return str(path)


def _request(image_spec: str, out_dir, **extra) -> inference_pb2.InferenceRequest:
  text = synthetic_ffn.request_text(image_spec, 'unused', str(out_dir),
                                    seed_policy='"PolicyGrid3d"',
                                    seed_policy_args=r'"{\"step\": 4, \"offsets\": [2]}"',
                                    **extra)
  return text_format.Parse(text, inference_pb2.InferenceRequest())


def _segment(request, shape):
  runner = runner_lib.Runner()
  runner.start(request, model=synthetic_ffn.NumpyModel())
  try:
    canvas = runner.run((0, 0, 0), shape)
  finally:
    runner.stop_executor()
  return canvas.segmentation.copy()


def _same_objects(a: np.ndarray, b: np.ndarray, min_overlap: float = 0.97) -> bool:
  """Whether every object of each segmentation lies (mostly) in one object of the other."""
  for x, y in ((a, b), (b, a)):
    for sid in np.unique(x[x > 0]):
      partners, counts = np.unique(y[x == sid], return_counts=True)
      best = counts[partners > 0].max(initial=0)
      if best < min_overlap * counts.sum():
        return False
  return True


def test_contrast_shifted_volume_segments_like_the_original(tmp_path):
  image, labels = _noisy_blobs()
  shifted = _contrast_shifted(image)
  original_spec = synthetic_ffn.write_h5(tmp_path / 'original.h5', image)
  shifted_spec = synthetic_ffn.write_h5(tmp_path / 'shifted.h5', shifted)
  lut = _write_lut(tmp_path / 'reference.npz', image)

  original = _segment(_request(original_spec, tmp_path / 'a'), image.shape)
  unmatched = _segment(_request(shifted_spec, tmp_path / 'b'), image.shape)
  matched = _segment(_request(shifted_spec, tmp_path / 'c', reference_histogram=f'"{lut}"'),
                     image.shape)

  assert np.mean((original > 0) == (labels > 0)) > 0.95
  # Without matching the shifted volume is too dark for the model to see the objects.
  assert not np.any(unmatched > 0)
  assert _same_objects(matched, original)
  assert np.mean((matched > 0) == (original > 0)) > 0.99


def test_histogram_masks_are_left_out_of_the_histogram(tmp_path):
  image, _ = _noisy_blobs()
  shifted = _contrast_shifted(image)
  shifted[:, :, 40:] = 255  # A saturated artefact, excluded from the histogram.
  spec = synthetic_ffn.write_h5(tmp_path / 'shifted.h5', shifted)
  lut_path = _write_lut(tmp_path / 'reference.npz', image)
  lut = np.load(lut_path)['lut']
  request = _request(spec, tmp_path / 'out', reference_histogram=f'"{lut_path}"',
                     histogram_masks='{ coordinate_expression { expression: "x >= 40" } }')
  runner = runner_lib.Runner()
  runner.start(request, model=synthetic_ffn.NumpyModel())
  try:
    canvas, _ = runner.make_canvas((0, 0, 0), shifted.shape)
  finally:
    runner.stop_executor()

  normalise = lambda a: ((a.astype(np.float32) - np.float32(synthetic_ffn.IMAGE_MEAN))
                         / np.float32(synthetic_ffn.IMAGE_STDDEV))
  mask = np.zeros(shifted.shape, dtype=bool)
  mask[:, :, 40:] = True
  expected, unmasked = shifted.copy(), shifted.copy()
  inference_utils.match_histogram(expected, lut, mask=mask)
  inference_utils.match_histogram(unmasked, lut)
  np.testing.assert_array_equal(canvas.image, normalise(expected))
  assert not np.array_equal(canvas.image, normalise(unmasked))


def test_histogram_masks_without_reference_histogram_fail(tmp_path):
  spec = synthetic_ffn.write_h5(tmp_path / 'image.h5', _noisy_blobs()[0])
  request = _request(spec, tmp_path / 'out',
                     histogram_masks='{ coordinate_expression { expression: "x >= 40" } }')
  with pytest.raises(ValueError, match='histogram_masks'):
    runner_lib.Runner().prepare(request)


@pytest.mark.parametrize('contents,message', [
    (None, 'cannot be read'),
    ({'table': np.arange(256)}, 'no "lut"'),
    ({'lut': np.arange(10)}, 'shape'),
])
def test_bad_reference_histogram_files(tmp_path, contents, message):
  path = tmp_path / 'reference.npz'
  if contents is None:
    path.write_bytes(b'not an npz')
  else:
    np.savez(path, **contents)
  with pytest.raises(ValueError, match=f'reference_histogram.*{message}'):
    histogram.load_reference_lut(str(path))
