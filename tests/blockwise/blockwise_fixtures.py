"""Synthetic volumes, models and plans for the blockwise tests (numpy models, no TensorFlow)."""

from __future__ import annotations

import os
import pathlib
import sys
import time

import h5py
import numpy as np

from ffn.blockwise import grid as grid_lib
from ffn.blockwise import plan as plan_lib
from ffn.blockwise import stitching
from ffn.utils import bounding_box

# The synthetic volumes and models of the inference tests.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / 'inference'))
import synthetic_ffn  # pylint: disable=g-import-not-at-top,wrong-import-position

SHAPE_ZYX = (24, 40, 64)
# 2 x 2 x 2 subvolumes; owned regions split at x 32, y 20, z 12.
SUBVOLUME_XYZ = (40, 26, 16)
# Covers the FOV context (9, 7, 5 xyz) on both sides of every small object across a border.
OVERLAP_XYZ = (16, 12, 8)
# A voxel value the failing model refuses (dark enough to be background).
POISON = 7


def blobs() -> list:
  """zyx (start, end) boxes: small objects across every kind of border, and inside blocks."""
  return [
      ((3, 3, 29), (8, 9, 35)),      # across the x border
      ((3, 17, 5), (8, 23, 11)),     # across the y border
      ((10, 4, 10), (15, 10, 16)),   # across the z border
      ((10, 17, 29), (15, 23, 35)),  # across the corner of all eight blocks
      ((3, 30, 45), (8, 36, 51)),    # inside one block
      ((16, 28, 4), (21, 34, 10)),   # inside another
  ]


def write_volume(directory: pathlib.Path) -> tuple[str, np.ndarray]:
  """(image spec, groundtruth labels) of the synthetic volume."""
  image, labels = synthetic_ffn.blob_volume(SHAPE_ZYX, blobs())
  return synthetic_ffn.write_h5(directory / 'image.h5', image), labels


def request_text(image_spec: str, output_dir: pathlib.Path, **extra) -> str:
  """A request for the numpy models (the checkpoint is never read)."""
  grid = dict(seed_policy='"PolicyGrid3d"',
              seed_policy_args=r'"{\"step\": 4, \"offsets\": [1, 2]}"')
  grid.update(extra)
  return synthetic_ffn.request_text(image_spec, 'unused', str(output_dir), **grid)


def region() -> bounding_box.BoundingBox:
  """The whole synthetic volume."""
  return bounding_box.BoundingBox.from_zyx((0, 0, 0), SHAPE_ZYX)


def make_plan(image_spec: str, output_dir: pathlib.Path, output_volume: str,
              model_factory: str = 'synthetic_ffn.NumpyModel', min_overlap_size: int = 20,
              active_blocks=None, **request_extra) -> plan_lib.BlockwisePlan:
  """The plan of a blockwise run of the synthetic volume."""
  grid = grid_lib.BlockGrid.from_xyz(region(), SUBVOLUME_XYZ, OVERLAP_XYZ)
  settings = stitching.StitchSettings(str(output_dir), grid, output_volume, min_overlap_size,
                                      active_blocks=active_blocks)
  return plan_lib.BlockwisePlan(settings, request_text(image_spec, output_dir,
                                                         **request_extra),
                                  model_factory=model_factory, max_retries=1)


def read_h5(spec: str) -> np.ndarray:
  """The contents of an HDF5 path:dataset."""
  path, dataset = spec.rsplit(':', 1)
  with h5py.File(path, 'r') as f:
    return f[dataset][...]


class SlowModel(synthetic_ffn.NumpyModel):
  """The numpy model, 5 ms per call: subvolumes take long enough to be checkpointed."""

  def predict_logits(self, image, seed):
    time.sleep(0.005)
    return super().predict_logits(image, seed)


class FailingModel(synthetic_ffn.NumpyModel):
  """The numpy model, except that it raises on any field of view holding a POISON voxel."""

  def predict_logits(self, image, seed):
    poison = (POISON - synthetic_ffn.IMAGE_MEAN) / synthetic_ffn.IMAGE_STDDEV
    if np.any(np.isclose(image, poison)):
      raise RuntimeError('poisoned voxels in the field of view')
    return super().predict_logits(image, seed)


BATCH_LOG_ENV = 'FFN_TEST_BATCH_LOG'


class BatchLoggingModel(synthetic_ffn.NumpyModel):
  """The numpy model, appending the FOVs of each call to the file $FFN_TEST_BATCH_LOG."""

  def predict_logits(self, image, seed):
    with open(os.environ[BATCH_LOG_ENV], 'a') as f:
      f.write(f'{len(image)}\n')
    return super().predict_logits(image, seed)
