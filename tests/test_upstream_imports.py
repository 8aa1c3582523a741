"""The import paths and names upstream users write (its README, scripts and 2019 notebook)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# module -> names upstream code reads from it.
UPSTREAM_NAMES = {
    'ffn.inference.inference': ['Canvas', 'Runner', 'DynamicImage'],
    'ffn.inference.inference_pb2': ['InferenceRequest', 'DecoratedVolume', 'MaskConfig',
                                    'MaskConfigs', 'SegmentationSource'],
    'ffn.inference.storage': ['load_segmentation', 'load_origins', 'save_subvolume',
                              'segmentation_path', 'object_prob_path', 'checkpoint_path',
                              'get_existing_corners', 'get_existing_subvolume_path',
                              'decorated_volume', 'build_mask', 'clip_subvolume_to_bounds',
                              'load_segmentation_from_source', 'OriginInfo'],
    'ffn.inference.segmentation': ['clear_dust', 'make_labels_contiguous', 'reduce_id_bits',
                                   'split_disconnected_components', 'clean_up',
                                   'split_segmentation_by_intersection'],
    'ffn.inference.policies.movement': ['get_scored_move_offsets', 'FaceMaxMovementPolicy',
                               'MovementRestrictor'],
    'ffn.inference.policies.seed': ['PolicyPeaks', 'PolicyMax'],
    'ffn.inference.align': ['Alignment', 'Aligner'],
    'ffn.inference.request.runner': ['Runner'],
    'ffn.training.model': ['ModelInfo'],
    'ffn.training.models.convstack_3d': ['ConvStack3DFFNModel'],
    'ffn.training.import_util': ['import_symbol'],
    'ffn.utils.bounding_box': ['BoundingBox'],
    'ffn.utils.bounding_box_pb2': ['BoundingBox'],
    'ffn.utils.vector_pb2': ['Vector3j'],
    'ffn.utils.ortho_plane_visualization': [],
}


def test_upstream_names_import_in_a_fresh_interpreter():
  code = ('import importlib, sys\n'
          f'names = {UPSTREAM_NAMES!r}\n'
          'missing = [f"{m}.{n}" for m, ns in names.items()\n'
          '           for n in ns if not hasattr(importlib.import_module(m), n)]\n'
          'sys.exit(", ".join(missing) if missing else 0)\n')
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=False, env=dict(os.environ, PYTHONPATH=REPO_ROOT))
  assert result.returncode == 0, result.stderr


def test_moved_modules_are_the_same_objects():
  from ffn.inference import segmentation  # pylint: disable=g-import-not-at-top
  from ffn.inference import storage  # pylint: disable=g-import-not-at-top
  from ffn.utils import labels  # pylint: disable=g-import-not-at-top
  from ffn.utils import masks  # pylint: disable=g-import-not-at-top
  assert segmentation.clear_dust is labels.clear_dust
  assert storage.clip_subvolume_to_bounds is masks.clip_subvolume_to_bounds


def test_upstream_2019_notebook_names_resolve():
  from ffn.inference.growing import visualization as canvas_visualization
  from ffn.inference import inference
  from ffn.inference.request import runner
  assert inference.Runner is runner.Runner
  assert inference.DynamicImage is canvas_visualization.DynamicImage
  with pytest.raises(AttributeError, match='Nope'):
    getattr(inference, 'Nope')
