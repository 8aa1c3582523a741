"""Small synthetic volumes and hand-built FFN models for the inference tests."""

from __future__ import annotations

import json
import pathlib
import types

import h5py
import numpy as np

# Geometry of the tiny models: xyz, deliberately non-cubic.
FOV_XYZ = (9, 7, 5)
DELTAS_XYZ = (2, 2, 1)
BRIGHT, DARK = 200, 50
IMAGE_MEAN, IMAGE_STDDEV = 128.0, 64.0


def blob_volume(shape_zyx=(20, 40, 48), blobs=None) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 image, int labels): bright cuboids on a dark background.

  `blobs` lists zyx (start, end) boxes; the default has two large ones and a
  small one, far enough apart that one FOV never sees two.
  """
  if blobs is None:
    blobs = [((3, 4, 4), (17, 16, 20)),
             ((3, 24, 26), (17, 36, 44)),
             ((8, 4, 30), (11, 7, 33))]
  image = np.full(shape_zyx, DARK, dtype=np.uint8)
  labels = np.zeros(shape_zyx, dtype=np.int64)
  for i, (start, end) in enumerate(blobs, 1):
    box = tuple(slice(s, e) for s, e in zip(start, end))
    image[box] = BRIGHT
    labels[box] = i
  return image, labels


def cut_and_wall_volume(shape_zyx=(20, 48, 48)) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 image, uint64 segmentation) for agglomeration tests, zyx.

  Ids 1 and 2 are one bright object cut in two (touching at x = 23|24); ids 3
  and 4 are two bright objects apart by a dark wall at x = 22..26 (wider than
  half the FOV), segmented so that they touch at x = 24|25.
  """
  image = np.full(shape_zyx, DARK, dtype=np.uint8)
  seg = np.zeros(shape_zyx, dtype=np.uint64)
  z, y1, y2 = slice(6, 13), slice(6, 17), slice(30, 41)
  image[z, y1, 4:44] = BRIGHT
  seg[z, y1, 4:24] = 1
  seg[z, y1, 24:44] = 2
  image[z, y2, 4:22] = BRIGHT
  image[z, y2, 27:44] = BRIGHT
  seg[z, y2, 4:25] = 3
  seg[z, y2, 25:44] = 4
  return image, seg


def threshold_logits(image: np.ndarray, seed: np.ndarray) -> np.ndarray:
  """The hand-built network: seed + (+12 on bright voxels, -10 on dark ones)."""
  return seed + np.where(image > 0, np.float32(12.0), np.float32(-10.0))


class NumpyModel:
  """A model-like object whose `predict_logits` is `threshold_logits` in numpy."""

  def __init__(self, fov_xyz=FOV_XYZ, deltas_xyz=DELTAS_XYZ):
    self.info = types.SimpleNamespace(
        deltas=tuple(deltas_xyz), pred_mask_size=tuple(fov_xyz),
        input_seed_size=tuple(fov_xyz), input_image_size=tuple(fov_xyz))
    self.deltas = np.array(deltas_xyz)
    self.calls = 0
    self.seeds_seen: list[np.ndarray] = []

  def predict_logits(self, image: np.ndarray, seed: np.ndarray) -> np.ndarray:
    self.calls += 1
    self.seeds_seen.append(np.array(seed))
    return threshold_logits(np.asarray(image), np.asarray(seed)).astype(np.float32)


MODEL_NAME = 'convstack_3d.ConvStack3DFFNModel'
MODEL_ARGS = {'depth': 1, 'features': 1, 'fov_size': list(FOV_XYZ),
              'deltas': list(DELTAS_XYZ)}


def build_tf_model(batch_size: int = 1):
  """A real ConvStack3DFFNModel whose weights compute `threshold_logits`."""
  from ffn.training import import_util  # pylint: disable=g-import-not-at-top
  model = import_util.build_model(MODEL_NAME, json.dumps(MODEL_ARGS), batch_size=batch_size)
  weights = model.named_variables()
  for name, var in weights.items():
    value = np.zeros(var.shape, dtype=np.float32)
    if name == 'conv0_a/kernel':
      value[1, 1, 1, 0, 0] = 1.0  # relu(image)
    elif name == 'conv0_b/kernel':
      value[1, 1, 1, 0, 0] = 1.0
    elif name == 'conv_lom/kernel':
      value[..., 0, 0] = 22.0 / ((BRIGHT - IMAGE_MEAN) / IMAGE_STDDEV)
    elif name == 'conv_lom/bias':
      value[...] = -10.0
    var.assign(value)
  return model


def write_tf_checkpoint(directory: pathlib.Path) -> str:
  """Saves the hand-built model as one of our checkpoints; returns its prefix."""
  from ffn.training import checkpoint  # pylint: disable=g-import-not-at-top
  model = build_tf_model()
  return checkpoint.make_checkpoint(model).write(str(directory / 'model.ckpt-1'))


def write_ranked_checkpoints(directory: pathlib.Path) -> tuple[str, str]:
  """(untrained prefix at step 5: all weights 0, trained prefix at step 10: build_tf_model)."""
  from ffn.training import checkpoint  # pylint: disable=g-import-not-at-top
  trained_prefix = checkpoint.make_checkpoint(build_tf_model()).write(
      str(directory / 'model.ckpt-10'))
  untrained = build_tf_model()
  for var in untrained.named_variables().values():
    var.assign(np.zeros(var.shape, np.float32))
  untrained_prefix = checkpoint.make_checkpoint(untrained).write(
      str(directory / 'model.ckpt-5'))
  return untrained_prefix, trained_prefix


def write_h5(path: pathlib.Path, data: np.ndarray, dataset: str = 'raw') -> str:
  """Writes `data` to an HDF5 file; returns the `path:dataset` spec."""
  with h5py.File(path, 'w') as f:
    f.create_dataset(dataset, data=data)
  return f'{path}:{dataset}'


def write_blob_setup(root: pathlib.Path) -> tuple[str, str, np.ndarray]:
  """Writes the blob image and the hand-built checkpoint under `root`: (image spec, prefix, labels)."""
  image, labels = blob_volume()
  return write_h5(root / 'image.h5', image), write_tf_checkpoint(root), labels


def request_text(image_spec: str, checkpoint: str, output_dir: str, **extra) -> str:
  """A text InferenceRequest for the hand-built TF model."""
  lines = [
      f'image {{ hdf5: "{image_spec}" }}',
      f'image_mean: {IMAGE_MEAN}', f'image_stddev: {IMAGE_STDDEV}',
      f'model_checkpoint_path: "{checkpoint}"',
      f'model_name: "{MODEL_NAME}"',
      'model_args: ' + json.dumps(json.dumps(MODEL_ARGS)),
      f'segmentation_output_dir: "{output_dir}"',
      'inference_options { init_activation: 0.95 pad_value: 0.05 move_threshold: 0.9 '
      'segment_threshold: 0.6 min_segment_size: 30 min_boundary_dist { x: 1 y: 1 z: 1 } }',
  ]
  for key, value in extra.items():
    lines.append(f'{key}: {value}')
  return '\n'.join(lines)
