"""A zarr copy of a crop of the bundled sample runs through every pipeline script."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from ffn.utils import bounding_box
from ffn.utils import volumes

from conftest import REPO_ROOT, SAMPLE_DIR

CROP_ZYX = (40, 50, 60)  # Non-cubic on purpose.
MODEL_ARGS = '{"depth": 2, "fov_size": [17, 17, 17], "deltas": [4, 4, 4]}'


def _run(*args: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  result = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
  assert result.returncode == 0, f'{args[0]}: {result.stderr[-3000:]}'
  return result


def _zarr_crop(h5_spec: str, out: str) -> str:
  """Copies the CROP_ZYX corner of an HDF5 volume to a zarr volume; returns its short spec."""
  box = bounding_box.BoundingBox.from_zyx((0, 0, 0), CROP_ZYX)
  with volumes.open_volume(h5_spec) as source:
    data = source.read(box)
  spec = f'zarr://{out}'
  with volumes.create_volume(spec, CROP_ZYX, data.dtype, chunks_zyx=(16, 16, 16)) as target:
    target.write(box, data)
  return spec


def test_zarr_sample_through_all_scripts(tmp_path):
  image = _zarr_crop(f'{SAMPLE_DIR}/grayscale_maps.h5:raw', tmp_path / 'image.zarr')
  labels = _zarr_crop(f'{SAMPLE_DIR}/groundtruth.h5:stack', tmp_path / 'labels.zarr')
  partitions = f'zarr://{tmp_path}/af.zarr'
  _run('compute_partitions.py', '--input_volume', labels, '--output_volume', partitions,
       '--thresholds', '0.1,0.5,0.9', '--lom_radius', '6,6,6', '--min_size', '100')
  assert len(set(np.unique(volumes.read_volume(partitions))) - {255}) >= 2

  coords = tmp_path / 'coords'
  _run('build_coordinates.py', '--partition_volumes', f'crop:{partitions}',
       '--coordinate_output', str(coords), '--margin', '12,12,12')
  assert coords.stat().st_size > 0

  train_dir = tmp_path / 'train'
  _run('train.py', '--train_coords', str(coords), '--data_volumes', f'crop:{image}',
       '--label_volumes', f'crop:{labels}', '--model_name', 'convstack_3d.ConvStack3DFFNModel',
       '--model_args', MODEL_ARGS, '--image_mean', '128', '--image_stddev', '33',
       '--train_dir', str(train_dir), '--max_steps', '2', '--batch_size', '1')
  assert (train_dir / 'model.ckpt-2.index').exists()

  image_json = json.dumps({'driver': 'zarr',
                           'kvstore': {'driver': 'file', 'path': str(tmp_path / 'image.zarr')}})
  results = tmp_path / 'results'
  request = (f'image {{ tensorstore: {json.dumps(image_json)} }} '
             'image_mean: 128 image_stddev: 33 seed_policy: "PolicyPeaks" '
             f'model_checkpoint_path: "{train_dir}/model.ckpt-2" '
             'model_name: "convstack_3d.ConvStack3DFFNModel" '
             f'model_args: {json.dumps(MODEL_ARGS)} segmentation_output_dir: "{results}" '
             'inference_options { init_activation: 0.95 pad_value: 0.05 move_threshold: 0.9 '
             'segment_threshold: 0.6 min_segment_size: 10 }')
  _run('run_inference.py', f'--inference_request={request}',
       '--bounding_box=start { x: 10 y: 10 z: 10 } size { x: 30 y: 20 z: 18 }')
  assert (results / '10' / '10' / 'seg-10_10_10.npz').exists()

  scores = tmp_path / 'scores.json'
  _run('evaluate_segmentation.py', '--segmentation_dir', str(results), '--corner', '10,10,10',
       '--groundtruth', labels, '--output_json', str(scores))
  result = json.loads(scores.read_text())
  assert result['box'] == {'start_xyz': [10, 10, 10], 'size_xyz': [30, 20, 18]}
  assert result['inputs']['groundtruth'] == labels
