"""The tf.data input pipeline: coordinates from TFRecords, patches from HDF5 volumes."""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import re
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from ffn.training import augmentation
from ffn.training import coordinate_check
from ffn.training import em_augmentation
from ffn.training import tfrecord
from ffn.utils import axes
from ffn.utils import channels
from ffn.utils import errors
from ffn.utils import volumes

_SHARD_RE = re.compile(r'@(\d+)$')


class InputError(errors.FFNError):
  """Training inputs (coordinates, volumes, normalisation) that cannot be used."""


def expand_coordinate_paths(pattern: str) -> list[str]:
  """Expands a comma list of files, globs and `path@N` shard specs into existing files."""
  paths = []
  for entry in (p.strip() for p in pattern.split(',')):
    if not entry:
      continue
    m = _SHARD_RE.search(entry)
    if m:
      n = int(m.group(1))
      shards = [f'{entry[:m.start()]}-{i:05d}-of-{n:05d}' for i in range(n)]
      missing = [s for s in shards if not os.path.isfile(s)]
      if missing:
        raise InputError(f'coordinate shards of {entry!r} do not exist: {missing[:3]}')
      paths.extend(shards)
    elif glob.has_magic(entry):
      found = sorted(glob.glob(entry))
      if not found:
        raise InputError(f'no coordinate file matches {entry!r}')
      paths.extend(found)
    elif os.path.isfile(entry):
      paths.append(entry)
    else:
      raise InputError(f'coordinate file {entry!r} does not exist')
  if not paths:
    raise InputError(f'no coordinate files given in {pattern!r}')
  return paths


def parse_coordinate(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Parses one coordinate record into (center [3] int64 xyz, volume name string)."""
  kinds = {'int64': tf.int64, 'bytes': tf.string}
  features = tf.io.parse_single_example(serialized, {
      name: tf.io.FixedLenFeature(shape, kinds[kind])
      for name, (kind, shape) in tfrecord.COORDINATE_FEATURES.items()})
  return features[tfrecord.CENTER][0], features[tfrecord.VOLUME_NAME][0]


def coordinate_dataset(paths: Sequence[str], shuffle_buffer: int = 1024,
                       repeat: bool = True, seed=None) -> tf.data.Dataset:
  """(center, volume name) pairs from GZIP TFRecords; files and records shuffled, repeating."""
  files = tf.data.Dataset.from_tensor_slices(list(paths))
  files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
  if repeat:
    files = files.repeat()
  records = files.interleave(
      lambda f: tf.data.TFRecordDataset(f, compression_type='GZIP', buffer_size=1 << 18),
      cycle_length=min(len(paths), 4))
  if shuffle_buffer > 1:
    records = records.shuffle(shuffle_buffer, seed=seed)
  return records.map(parse_coordinate)


def read_patch(volume, center_xyz: Sequence[int], size_xyz: Sequence[int],
               what: str = 'volume') -> np.ndarray:
  """Reads the [z, y, x, c] patch of `size_xyz` centred at `center_xyz`; fails outside bounds.

  The patch starts at center - (size - 1) // 2. A 4-D volume is (c, z, y, x).
  """
  center = np.asarray(center_xyz, np.int64)
  size = np.asarray(size_xyz, np.int64)
  start = center - (size - 1) // 2
  end = start + size
  spatial_zyx = np.asarray(volume.shape[-3:])
  if np.any(start < 0) or np.any(end[::-1] > spatial_zyx):
    raise InputError(
        f'patch of size {size.tolist()} (xyz) at coordinate {center.tolist()} (xyz) spans '
        f'{start.tolist()}..{(end - 1).tolist()}, outside {what} of shape '
        f'{spatial_zyx[::-1].tolist()} (xyz); build coordinates with a larger margin')
  zyx = tuple(slice(int(s), int(e)) for s, e in zip(start[::-1], end[::-1]))
  if volume.ndim == 4:
    return np.moveaxis(np.asarray(volume[(slice(None),) + zyx]), 0, -1)
  return np.asarray(volume[zyx])[..., np.newaxis]


class VolumeSource:
  """Image and label volumes by name, read as patches around coordinates."""

  def __init__(self, data_volumes: str | Sequence[str], label_volumes: str | Sequence[str]):
    try:
      self.image_specs = volumes.parse_named_volume_specs(data_volumes)
      self.label_specs = volumes.parse_named_volume_specs(label_volumes)
      self.images = {n: channels.channels_first(volumes.open_volume(s), f'image {s}')
                     for n, s in self.image_specs.items()}
      self.labels = {n: volumes.open_volume(s) for n, s in self.label_specs.items()}
    except (volumes.VolumeSpecError, channels.ChannelAxisError) as e:
      raise InputError(str(e)) from e
    self._check()

  def _check(self) -> None:
    """Checks that volumes pair up by name and share shapes and dtypes."""
    missing = sorted(set(self.labels) - set(self.images))
    if missing:
      raise InputError(f'label volumes {missing} have no image volume of the same name in '
                       f'data_volumes (names: {sorted(self.images)})')
    for name, labels in self.labels.items():
      image = self.images[name]
      if tuple(image.shape[-3:]) != tuple(labels.shape[-3:]) or labels.ndim != 3:
        raise InputError(
            f'volume {name!r}: image {self.image_specs[name]} has shape {image.shape} but '
            f'labels {self.label_specs[name]} have shape {labels.shape}; the zyx shapes must '
            'match and labels must be 3-D')
    for kind, vols in (('image', self.images), ('label', self.labels)):
      dtypes = {str(v.dtype) for v in vols.values()}
      if len(dtypes) > 1:
        raise InputError(f'all {kind} volumes must share one dtype, got {sorted(dtypes)}')
    for name, labels in self.labels.items():
      if np.dtype(labels.dtype).kind not in 'iu':
        raise InputError(f'label volume {name!r} ({self.label_specs[name]}) is '
                         f'{np.dtype(labels.dtype)}; labels are integer object ids')
    channels = {v.shape[0] if v.ndim == 4 else 1 for v in self.images.values()}
    if channels != {1}:
      raise InputError(f'image volumes must have 1 channel, got {sorted(channels)}')

  @property
  def image_dtype(self) -> np.dtype:
    return next(iter(self.images.values())).dtype

  @property
  def label_dtype(self) -> np.dtype:
    return next(iter(self.labels.values())).dtype

  def load(self, center_xyz, volume_name, image_size_xyz, label_size_xyz):
    """Reads the (image, labels) patches, each [z, y, x, 1], around one coordinate."""
    name = volume_name.decode('utf-8') if isinstance(volume_name, bytes) else str(volume_name)
    if name not in self.labels:
      raise InputError(f'coordinate {list(center_xyz)} names volume {name!r}, which is not '
                       f'among the label volumes {sorted(self.labels)}')
    image = read_patch(self.images[name], center_xyz, image_size_xyz,
                       f'image volume {name!r}')
    labels = read_patch(self.labels[name], center_xyz, label_size_xyz,
                        f'label volume {name!r}')
    return image, labels


def parse_offset_scale_map(entries: Sequence[str] | None) -> dict[str, tuple[float, float]]:
  """Parses `volname:offset:scale` entries into name -> (offset, scale)."""
  out = {}
  for entry in entries or ():
    parts = entry.split(':')
    try:
      name, offset, scale = parts[0], float(parts[1]), float(parts[2])
      if len(parts) != 3 or not name:
        raise ValueError
    except (ValueError, IndexError):
      raise InputError(f'image_offset_scale_map entry {entry!r} must be volname:offset:scale')
    if not (math.isfinite(offset) and math.isfinite(scale) and scale > 0):
      raise InputError(f'image_offset_scale_map entry {entry!r} needs a finite offset and a '
                       'finite scale above 0')
    out[name] = (offset, scale)
  return out


def object_mask(labels: tf.Tensor) -> tf.Tensor:
  """True where `labels` [z, y, x, 1] equal the non-zero label of the centre voxel."""
  shape = tf.shape(labels)
  center = labels[shape[0] // 2, shape[1] // 2, shape[2] // 2, 0]
  return tf.logical_and(labels > 0, tf.equal(labels, center))


def soften_labels(mask: tf.Tensor, softness: float = 0.05) -> tf.Tensor:
  """Maps a boolean mask to float32 1 - softness (True) and softness (False)."""
  return tf.where(mask, 1.0 - softness, softness)


class Normalizer:
  """(image - offset) / scale with per-volume offsets and scales and a default."""

  def __init__(self, offset_scale_map: Mapping[str, tuple[float, float]],
               default_offset: float | None, default_scale: float | None,
               volume_names: Sequence[str]):
    if default_offset is None or default_scale is None:
      missing = sorted(set(volume_names) - set(offset_scale_map))
      if missing:
        raise InputError(
            '--image_mean and --image_stddev are required unless --image_offset_scale_map '
            f'covers every volume; missing: {missing}')
      default_offset, default_scale = 0.0, 1.0
    if default_scale == 0:
      raise InputError('--image_stddev must not be 0')
    names = list(offset_scale_map) or ['']
    def table(values, default):
      return tf.lookup.StaticHashTable(
          tf.lookup.KeyValueTensorInitializer(tf.constant(names), tf.constant(values, tf.float32)),
          default_value=float(default))
    self._offsets = table([offset_scale_map.get(n, (default_offset, 1))[0] for n in names],
                          default_offset)
    self._scales = table([offset_scale_map.get(n, (0, default_scale))[1] for n in names],
                         default_scale)

  def __call__(self, image: tf.Tensor, volume_name: tf.Tensor) -> tf.Tensor:
    """Normalises an image patch from the volume named `volume_name` (a string tensor)."""
    image = tf.cast(image, tf.float32)
    return (image - self._offsets.lookup(volume_name)) / self._scales.lookup(volume_name)


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """The training data and its preparation; names and defaults follow upstream's train.py flags."""
  train_coords: str
  data_volumes: str | Sequence[str]
  label_volumes: str | Sequence[str]
  image_mean: float | None = None
  image_stddev: float | None = None
  image_offset_scale_map: Sequence[str] | None = None
  permutable_axes: Sequence[int] = (1, 2)
  reflectable_axes: Sequence[int] = (0, 1, 2)
  # EM augmentations beyond upstream 2019's permute/reflect; all off by default.
  augmentations: em_augmentation.EMAugmentation = em_augmentation.EMAugmentation()

  def data_fields(self) -> dict:
    """This config's DataConfig fields, by name."""
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(DataConfig)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class PipelineConfig(DataConfig):
  """What the input pipeline reads and how it prepares examples (sizes are xyz)."""
  image_size: Sequence[int]
  label_size: Sequence[int]
  shuffle_buffer: int = 1024
  seed: int | None = None


def check_permutable_sizes(permutable_axes: Sequence[int], *sizes_xyz) -> None:
  """Permuting axes of different lengths would change the patch shape; reject that."""
  for size in sizes_xyz:
    zyx = list(axes.xyz_to_zyx(size))
    lengths = {zyx[a] for a in permutable_axes}
    if len(lengths) > 1:
      raise InputError(f'permutable_axes {list(permutable_axes)} (zyx) have different '
                       f'lengths {[zyx[a] for a in permutable_axes]} in a patch of '
                       f'{list(size)} (xyz)')


def _as_float_image(patches):
  """(image, labels) with the image converted to float32."""
  image, labels = patches
  return image.astype(np.float32), labels


def example_dataset(config: PipelineConfig, source: VolumeSource | None = None
                    ) -> tf.data.Dataset:
  """Training examples: dicts of image, labels, weights ([z, y, x, 1]), center and volname."""
  permutable = augmentation.check_axes(config.permutable_axes, 'permutable_axes')
  reflectable = augmentation.check_axes(config.reflectable_axes, 'reflectable_axes')
  check_permutable_sizes(permutable, config.image_size, config.label_size)
  source = source or VolumeSource(config.data_volumes, config.label_volumes)
  normalize = Normalizer(parse_offset_scale_map(config.image_offset_scale_map),
                         config.image_mean, config.image_stddev, list(source.images))
  paths = expand_coordinate_paths(config.train_coords)
  image_size = [int(v) for v in config.image_size]
  label_size = [int(v) for v in config.label_size]
  coordinate_check.check_coordinate_files(
      paths, {name: vol.shape for name, vol in source.labels.items()}, (image_size, label_size))
  image_shape = list(axes.xyz_to_zyx(image_size)) + [1]
  label_shape = list(axes.xyz_to_zyx(label_size)) + [1]
  em = config.augmentations
  em.check_patch(image_shape[:3], label_shape[:3])

  def load(center, volname):
    # The image leaves numpy as float32: oneDNN has no uint8 kernels on most CPUs
    # (and says so in an error log line).
    image, labels = tf.numpy_function(
        lambda c, n: _as_float_image(source.load(c, n, image_size, label_size)),
        [center, volname], [tf.float32, tf.as_dtype(source.label_dtype)],
        name='load_patches')
    return tf.ensure_shape(image, image_shape), tf.ensure_shape(labels, label_shape), \
        center, volname

  def prepare(image, labels, center, volname):
    soft_labels = soften_labels(object_mask(labels))  # Before augmentation, as upstream.
    weights = tf.ones_like(soft_labels)
    permutation, reflect = augmentation.sample_transform(permutable, reflectable)
    # Section augmentations come before permute/reflect, while z is still the
    # sectioning axis; drawn after sample_transform, and only when on, so that
    # its draws stay as they were.
    if em.geometry or em.intensity:
      geometry_seed, intensity_seed = tf.unstack(tf.random.experimental.stateless_split(
          tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32), 2))
    if em.geometry:
      # Weights ride on the labels' channel axis, so both move as one.
      image, moved = em_augmentation.augment_geometry(
          em, image, tf.concat([soft_labels, weights], axis=-1), geometry_seed)
      soft_labels, weights = moved[..., :1], moved[..., 1:]
    image = normalize(image, volname)  # Elementwise: the same before or after the transform.
    if em.intensity:
      image = em_augmentation.augment_intensity(em, image, intensity_seed)
    return {
        'image': augmentation.apply_transform(image, permutation, reflect),
        'labels': augmentation.apply_transform(soft_labels, permutation, reflect),
        'weights': augmentation.apply_transform(weights, permutation, reflect),
        'center': center,
        'volname': volname,
    }

  ds = coordinate_dataset(paths, config.shuffle_buffer, seed=config.seed)
  ds = ds.map(load, num_parallel_calls=2, deterministic=config.seed is not None)
  ds = ds.map(prepare, num_parallel_calls=2, deterministic=config.seed is not None)
  return ds.prefetch(8)
