"""Opening the volumes an InferenceRequest names (DecoratedVolume protos).

An hdf5 volume opens as an h5py dataset, a TensorStore JSON spec as a
TensorStoreVolume; both index like numpy arrays, zyx or czyx.
"""

from __future__ import annotations

import numpy as np

from ffn.inference import inference_pb2
from ffn.inference import resolve
from ffn.inference.axes import ZYX
from ffn.utils import volume_spec


class TensorStoreVolume:
  """A read-only TensorStore seen as a lazy numpy array: indexing reads and returns np arrays.

  Integer and slice indices follow numpy rules (negative indices count from the
  end, slice bounds are clipped to the shape); other index types are passed to
  TensorStore as they are.
  """

  def __init__(self, store):
    # Indices below are relative to the first voxel, whatever the store's origin.
    self._store = store.translate_to[0] if any(store.domain.origin) else store

  @property
  def shape(self) -> tuple[int, ...]:
    """The shape, in the store's dimension order (zyx or czyx here)."""
    return tuple(int(n) for n in self._store.shape)

  @property
  def ndim(self) -> int:
    """The number of dimensions."""
    return self._store.rank

  @property
  def dtype(self) -> np.dtype:
    """The numpy dtype of the voxels."""
    return np.dtype(self._store.dtype.numpy_dtype)

  @property
  def store(self):
    """The underlying TensorStore."""
    return self._store

  def _numpy_index(self, index) -> tuple:
    """`index` with its ints and slices made non-negative and in bounds, as numpy reads them."""
    if not isinstance(index, tuple):
      index = (index,)
    if any(i is Ellipsis for i in index):
      at = index.index(Ellipsis)
      explicit = sum(i is not None for i in index) - 1
      index = index[:at] + (slice(None),) * (self.ndim - explicit) + index[at + 1:]
    result = []
    dims = iter(self.shape)
    for item in index:
      if item is None:
        result.append(item)
        continue
      n = next(dims, None)
      if n is None:
        raise IndexError(f'too many indices for a volume of shape {self.shape}: {index!r}')
      if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
        i = int(item)
        if not -n <= i < n:
          raise IndexError(f'index {i} is out of bounds for an axis of size {n}')
        result.append(i % n)
      elif isinstance(item, slice):
        start, stop, step = item.indices(n)
        if step < 0 and stop < 0:
          stop = None  # Run down to and including voxel 0.
        elif step > 0 and stop < start:
          stop = start
        result.append(slice(start, stop, step))
      else:
        result.append(item)
    return tuple(result)

  def __getitem__(self, index) -> np.ndarray:
    return np.asarray(self._store[self._numpy_index(index)].read().result())

  def __array__(self, dtype=None, copy=None):
    del copy
    data = self[...]
    return data if dtype is None else data.astype(dtype)

  def __repr__(self) -> str:
    return f'TensorStoreVolume(shape={self.shape}, dtype={self.dtype})'


def _open_tensorstore(spec_json: str) -> TensorStoreVolume:
  """Opens a JSON TensorStore spec for reading."""
  spec = resolve.json_object(spec_json, 'DecoratedVolume.tensorstore')
  import tensorstore as ts  # pylint: disable=g-import-not-at-top  (only needed for this source)
  try:
    store = ts.open(spec, read=True).result()
  except ValueError as e:
    raise ValueError(f'cannot open TensorStore spec {spec_json!r}: {e}') from e
  return TensorStoreVolume(store)


def decorated_volume(settings: inference_pb2.DecoratedVolume):
  """Opens the volume a DecoratedVolume names: an h5py dataset or a TensorStoreVolume (3-D or 4-D)."""
  source = settings.WhichOneof('volume_path')
  if source == 'volinfo':
    raise NotImplementedError(
        f'DecoratedVolume.volinfo ({settings.volinfo!r}) names a Google-internal VolumeStore, '
        'which is not available here; use hdf5 ("file.h5:dataset") or tensorstore (JSON spec)')
  if settings.HasField('decorator_specs'):
    raise ValueError('DecoratedVolume.decorator_specs is only valid with volinfo volumes, '
                     f'got it with {source}')
  if source == 'hdf5':
    volume = volume_spec.open_volume(volume_spec.parse_volume_spec(settings.hdf5, with_name=False))
  elif source == 'tensorstore':
    volume = _open_tensorstore(settings.tensorstore)
  else:
    raise ValueError('DecoratedVolume has no volume set; expected hdf5 ("file.h5:dataset") '
                     'or tensorstore (a JSON spec)')
  if volume.ndim not in (3, 4):
    raise ValueError(f'the volume {getattr(settings, source)!r} has shape {tuple(volume.shape)}; '
                     'expected a 3-D (z, y, x) or 4-D (c, z, y, x) volume')
  return volume


def clip_subvolume_to_bounds(corner: ZYX, size: ZYX, volume) -> tuple[np.ndarray, np.ndarray]:
  """The zyx (corner, size) of the part of a box inside `volume` (size 0 where it misses)."""
  shape = np.asarray(volume.shape[-3:], dtype=np.int64)
  corner = np.asarray(corner, dtype=np.int64)
  start = np.clip(corner, 0, shape)
  end = np.clip(corner + np.asarray(size, dtype=np.int64), 0, shape)
  return start, np.maximum(end - start, 0)


