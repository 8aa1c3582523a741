"""Files written the way upstream's 2019 Runner writes them load through our storage."""

from __future__ import annotations

import os
import pickle

import numpy as np

from ffn.inference import inference_pb2
from ffn.inference import inference_utils
from ffn.inference.io import probmaps
from ffn.inference.io import results

CORNER = (0, 16, 48)  # zyx


def _upstream_like_outputs():
  """Labels, origins, quantised probabilities and extras as upstream's Canvas holds them."""
  labels = np.zeros((5, 6, 7), dtype=np.int32)
  labels[0:2, 0:3, 0:3] = 4
  labels[3:5, 3:6, 4:7] = 4      # a second component of 4
  labels[2, :, :] = 11
  labels[4, 0, 0] = -1           # a failed-seed marker; upstream clears it before saving
  origins = {
      # start_zyx is relative to the subvolume; upstream builds it from numpy ints.
      4: results.OriginInfo(tuple(np.array([1, 1, 1])), 12, 0.75),
      11: results.OriginInfo((2, 3, 3), 5, 0.2),
  }
  prob = np.where(labels > 0, 0.8, 0.1).astype(np.float32)
  prob[2, 0, :] = 0.4
  return labels, origins, prob


def _write_like_upstream(directory, corner, layout='new'):
  labels, origins, prob = _upstream_like_outputs()
  labels[labels < 0] = 0
  seg = labels.astype(np.uint8)  # upstream's reduce_id_bits
  counters = inference_utils.Counters()
  counters['inference-calls'].IncrementBy(7)
  request = inference_pb2.InferenceRequest(model_name='convstack_3d.ConvStack3DFFNModel')
  if layout == 'new':
    seg_path = results.segmentation_path(directory, corner)
    prob_path = results.object_prob_path(directory, corner)
  else:
    seg_path = results.legacy_segmentation_path(directory, corner)
    prob_path = results.legacy_object_prob_path(directory, corner)
  os.makedirs(os.path.dirname(seg_path), exist_ok=True)
  # Upstream passes the dicts straight to savez_compressed, which pickles them.
  with open(seg_path, 'wb') as f:
    np.savez_compressed(f, segmentation=seg, origins=origins,
                        request=request.SerializeToString(), counters=counters.dumps(),
                        overlaps={4: np.array([11])})
  with open(prob_path, 'wb') as f:
    np.savez_compressed(f, qprob=probmaps.quantize_probability(prob))
  return labels, origins, prob


def test_origin_info_pickles_under_upstream_name():
  info = results.OriginInfo((1, 2, 3), 4, 0.5)
  blob = pickle.dumps({7: info}, protocol=2)
  assert b'ffn.inference.storage' in blob and b'OriginInfo' in blob
  assert pickle.loads(blob)[7] == info
  assert results.OriginInfo._fields == ('start_zyx', 'iters', 'walltime_sec')


def test_upstream_npz_loads_unchanged(tmp_path):
  d = str(tmp_path)
  labels, origins, _ = _write_like_upstream(d, CORNER)
  assert os.path.exists(os.path.join(d, '48', '16', 'seg-48_16_0.npz'))
  seg, got = results.load_segmentation(d, CORNER, split_cc=False)
  assert seg.dtype == np.uint64
  np.testing.assert_array_equal(seg, labels)
  assert got == origins
  assert isinstance(got[4], results.OriginInfo)
  assert got[4].start_zyx == (1, 1, 1) and got[4].iters == 12
  assert results.load_origins(d, CORNER) == origins
  assert results.get_existing_corners(d) == [CORNER]


def test_upstream_npz_cleaned_and_thresholded(tmp_path):
  d = str(tmp_path)
  labels, origins, prob = _write_like_upstream(d, CORNER)
  seg, got = results.load_segmentation(d, CORNER, threshold=0.5)
  kept = labels.copy()
  kept[prob < 0.5] = 0
  np.testing.assert_array_equal(seg > 0, kept > 0)
  # Id 4 comes back as two objects, both with 4's origin; 11 keeps its own.
  ids = sorted(set(np.unique(seg).tolist()) - {0})
  assert len(ids) == 3
  assert sorted(got) == ids
  for new_id in ids:
    (old_id,) = np.unique(labels[seg == new_id])
    assert got[new_id] == origins[int(old_id)]


def test_upstream_legacy_layout(tmp_path):
  d = str(tmp_path)
  labels, origins, _ = _write_like_upstream(d, CORNER, layout='legacy')
  assert os.path.exists(os.path.join(d, 'seg-48_16_0.npz'))
  source = inference_pb2.SegmentationSource(directory=d, split_cc=False, threshold=0.05)
  seg, got = results.load_segmentation_from_source(source, CORNER)
  np.testing.assert_array_equal(seg, labels)
  assert got == origins
