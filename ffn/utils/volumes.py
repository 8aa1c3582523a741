"""The one way to open a volume, whatever its format: HDF5, zarr (v2/v3), N5, precomputed.

Accepted specs (`open_volume` / `create_volume`):
  path/to/vol.h5:raw, C:\\data\\vol.h5:raw, path@raw   an HDF5 dataset (see parse_volume_spec)
  {"driver": "zarr", "kvstore": ...}                   a TensorStore JSON spec
  zarr:///abs/vol.zarr, zarr3:///abs/vol.zarr          short forms of TensorStore specs
  n5:///abs/vol.n5, precomputed:///abs/dir[#scale]      (`#` picks a precomputed scale key)

Arrays are zyx (or czyx). N5 and neuroglancer precomputed store x fastest-first
as the tools of the field read them, so their TensorStore dimensions (xyz[c]) are
reversed here, the one place this happens for volumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import tempfile
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from ffn.utils import atomic
from ffn.utils import bounding_box
from ffn.utils import errors
from ffn.utils import locks
from ffn.utils import resolve
from ffn.utils import volume_metadata

_DRIVE_RE = re.compile(r'^[A-Za-z]:[\\/]')
_URL_RE = re.compile(r'^(zarr|zarr3|n5|precomputed)://(.*)$')
_URL_DRIVERS = {'zarr': 'zarr', 'zarr3': 'zarr3', 'n5': 'n5',
                'precomputed': 'neuroglancer_precomputed'}
# Drivers whose TensorStore dimensions are xyz[c]: reversed to [c]zyx here.
_XYZ_DRIVERS = ('n5', 'neuroglancer_precomputed')


# The spec forms, for flag help texts.
SPEC_FORMS = ('path.h5:dataset, a TensorStore JSON spec, zarr:///path, zarr3:///path, '
              'n5:///path or precomputed:///path')


class VolumeSpecError(errors.FFNError):
  """A volume spec that cannot be parsed or opened."""


# ----------------------------------------------------------------------------
# HDF5 specs: [name:]path:dataset.


@dataclasses.dataclass(frozen=True)
class VolumeSpec:
  """Where a volume lives: an HDF5 file `path`, the `dataset` inside it, and an optional `name`."""
  path: str
  dataset: str
  name: Optional[str] = None

  def __str__(self) -> str:
    parts = [self.path, self.dataset] if self.name is None else [self.name, self.path, self.dataset]
    return ':'.join(parts)


def _split_path_and_name(head: str, sep: str, with_name: Optional[bool], spec: str):
  """Splits `head` (everything before the dataset) into (name, path)."""
  if with_name is False:
    return None, head
  if sep == ':' and _DRIVE_RE.match(head) and not (with_name and head[2] == '/'):
    # "C:\..." alone: the colon belongs to the drive letter, there is no name.
    # When a name is required, "v:/abs/path" reads as name "v" and a POSIX path.
    candidate_name, path = None, head
  elif sep in head:
    candidate_name, path = head.split(sep, 1)
  else:
    candidate_name, path = None, head
  if with_name and not candidate_name:
    raise VolumeSpecError(
        f'volume spec {spec!r} has no volume name; expected name:path:dataset '
        '(or name@path@dataset)')
  return candidate_name, path


def parse_volume_spec(spec: str, with_name: Optional[bool] = None) -> VolumeSpec:
  """Parses one HDF5 spec; `with_name` True requires a name, False forbids one, None allows both."""
  if not isinstance(spec, str) or not spec.strip():
    raise VolumeSpecError(f'empty volume spec {spec!r}; expected [name:]path:dataset')
  spec = spec.strip()
  sep = '@' if '@' in spec else ':'
  if sep not in spec:
    raise VolumeSpecError(
        f'volume spec {spec!r} has no dataset; expected [name:]path:dataset, '
        'e.g. groundtruth.h5:stack')
  head, dataset = spec.rsplit(sep, 1)
  if sep == ':' and len(head) == 1 and head.isalpha():
    # "C:\\data\\vol.h5" without a dataset: the only colon is the drive letter's.
    raise VolumeSpecError(f'volume spec {spec!r} has no dataset; expected [name:]path:dataset')
  if not dataset or not head or '\\' in dataset:
    raise VolumeSpecError(f'volume spec {spec!r} is malformed; expected [name:]path:dataset')
  name, path = _split_path_and_name(head, sep, with_name, spec)
  if not path:
    raise VolumeSpecError(f'volume spec {spec!r} has an empty path; expected [name:]path:dataset')
  if name is not None and (not name or '/' in name or '\\' in name):
    raise VolumeSpecError(f'volume spec {spec!r} has a malformed name {name!r}')
  return VolumeSpec(path=path, dataset=dataset, name=name)


def split_name(entry: str) -> tuple[str, str]:
  """Splits `name:spec` (or `name@...`) into the name and a volume spec of any form."""
  entry = entry.strip()
  name, sep, rest = entry.partition(':')
  if sep and (rest.startswith('{') or _URL_RE.match(rest)):
    return name, rest
  spec = parse_volume_spec(entry, with_name=True)
  return spec.name, str(VolumeSpec(spec.path, spec.dataset))


def parse_named_volume_specs(specs: Iterable[str]) -> dict[str, Any]:
  """Parses `name:spec` entries (a list or a comma-joined string) into name -> spec.

  HDF5 entries become VolumeSpecs; TensorStore entries (`name:{...}` JSON or a
  short URL) stay strings, since JSON specs contain commas they are only
  accepted in list form.
  """
  if isinstance(specs, str):
    specs = [s for s in specs.split(',') if s.strip()]
  result: dict[str, Any] = {}
  for entry in specs:
    name, rest = split_name(entry)
    if not name or '/' in name or '\\' in name:
      raise VolumeSpecError(f'volume spec {entry!r} has a malformed name {name!r}')
    if name in result:
      raise VolumeSpecError(f'volume name {name!r} is given twice: {entry!r}')
    result[name] = (parse_volume_spec(entry, with_name=True) if not _is_tensorstore(rest)
                    else rest)
  if not result:
    raise VolumeSpecError('no volume specs given; expected name:path:dataset[,...]')
  return result


def open_hdf5_dataset(spec, mode: str = 'r'):
  """The h5py dataset of an HDF5 spec (or spec string), its file open; clear errors."""
  import h5py  # pylint: disable=g-import-not-at-top  (parsing works without h5py)
  if isinstance(spec, str):
    spec = parse_volume_spec(spec)
  if not os.path.exists(spec.path):
    raise VolumeSpecError(f'volume file {spec.path!r} does not exist (from spec {str(spec)!r})')
  try:
    h5file = h5py.File(spec.path, mode)
  except OSError as e:
    raise VolumeSpecError(f'cannot open {spec.path!r} as HDF5: {e}') from e
  if spec.dataset not in h5file:
    available = sorted(h5file.keys())
    h5file.close()
    raise VolumeSpecError(
        f'dataset {spec.dataset!r} not found in {spec.path!r}; available: {available}')
  return h5file[spec.dataset]


def _location(spec) -> Optional[tuple[str, str]]:
  """(real path, dataset or key) where a spec's data lives on this file system; None if elsewhere."""
  if isinstance(spec, VolumeSpec):
    return os.path.realpath(spec.path), spec.dataset
  if not isinstance(spec, str):
    return None
  if _is_tensorstore(spec):
    try:
      parsed = tensorstore_spec(spec)
    except VolumeSpecError:
      return None
    kvstore = parsed.get('kvstore')
    if isinstance(kvstore, dict) and kvstore.get('driver') == 'file' and kvstore.get('path'):
      return os.path.realpath(kvstore['path']), str(parsed.get('path', ''))
    return None
  try:
    return _location(parse_volume_spec(spec))
  except VolumeSpecError:
    return os.path.realpath(spec), ''  # A plain file or directory.


def check_output_not_input(output, inputs: Iterable, what: str = 'output') -> None:
  """Raises VolumeSpecError if the `output` volume spec names the data of one of `inputs`.

  Another dataset of the same HDF5 file is allowed (writes keep a file's other
  datasets); the same dataset, or a store inside an input's, is not.
  """
  out = _location(output)
  if out is None:
    return
  for spec in inputs:
    here = _location(spec) if spec is not None else None
    if here is None:
      continue
    same_place = here[0] == out[0] and (here[1] == out[1] or not here[1] or not out[1])
    inside = out[0].startswith(here[0].rstrip(os.sep) + os.sep) or here[0].startswith(
        out[0].rstrip(os.sep) + os.sep)
    if same_place or inside:
      raise VolumeSpecError(f'{what} {errors.cut(str(output))} is the input {errors.cut(str(spec))}'
                            '; writing it would destroy what is being read. Give another '
                            f'{what}')


# ----------------------------------------------------------------------------
# TensorStore specs.


def _is_tensorstore(spec) -> bool:
  """Whether a spec string names a TensorStore volume (JSON or a short URL)."""
  return isinstance(spec, str) and (spec.lstrip().startswith('{') or bool(_URL_RE.match(spec)))


def tensorstore_spec(spec: str) -> dict:
  """The TensorStore JSON object of a JSON spec string or a short URL form."""
  spec = spec.strip()
  match = _URL_RE.match(spec)
  if match:
    kind, rest = match.groups()
    path, _, key = rest.partition('#')
    if not path:
      raise VolumeSpecError(f'volume spec {spec!r} has no path; expected e.g. {kind}:///data/v')
    result = {'driver': _URL_DRIVERS[kind], 'kvstore': {'driver': 'file', 'path': path}}
    if key and kind == 'precomputed':
      result['scale_metadata'] = {'key': key}
    elif key:
      result['path'] = key
    return result
  try:
    return resolve.parse_json_object(spec, 'TensorStore spec')
  except errors.FFNError as e:
    raise VolumeSpecError(str(e)) from e


def _xyz_driver(spec: dict) -> bool:
  """Whether the driver stores x fastest-first (dimensions xyz[c])."""
  return spec.get('driver') in _XYZ_DRIVERS


def _to_zyx(store, spec: dict):
  """The store with its origin at 0 and its dimensions [c]zyx."""
  if any(store.domain.origin):
    store = store.translate_to[0]
  if _xyz_driver(spec):
    store = store.T
    if spec.get('driver') == 'neuroglancer_precomputed' and store.shape[0] == 1:
      store = store[0]
  return store


def _open_tensorstore(spec_text: str):
  """Opens a TensorStore spec string for reading, as a [c]zyx store."""
  spec = tensorstore_spec(spec_text)
  import tensorstore as ts  # pylint: disable=g-import-not-at-top  (only needed for these specs)
  try:
    store = ts.open(spec, read=True).result()
  except ValueError as e:
    raise VolumeSpecError(f'cannot open TensorStore spec {spec_text!r}: {e}') from e
  return _to_zyx(store, spec)


# ----------------------------------------------------------------------------
# Reading.


def _numpy_index(index, shape: Sequence[int]) -> tuple:
  """`index` with its ints and slices made non-negative and in bounds, as numpy reads them."""
  if not isinstance(index, tuple):
    index = (index,)
  if any(i is Ellipsis for i in index):
    at = index.index(Ellipsis)
    explicit = sum(i is not None for i in index) - 1
    index = index[:at] + (slice(None),) * (len(shape) - explicit) + index[at + 1:]
  result = []
  dims = iter(shape)
  for item in index:
    if item is None:
      result.append(item)
      continue
    n = next(dims, None)
    if n is None:
      raise IndexError(f'too many indices for a volume of shape {tuple(shape)}: {index!r}')
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


class Volume:
  """A read-only, lazily read volume: indexing reads the box and returns a numpy array."""

  def __init__(self, name: str, shape: Sequence[int], dtype, attrs: Optional[dict] = None):
    self.name = name
    self._shape = tuple(int(n) for n in shape)
    self._dtype = np.dtype(dtype)
    self.attrs = dict(attrs or {})

  @property
  def shape(self) -> tuple[int, ...]:
    """The shape: zyx, or czyx."""
    return self._shape

  @property
  def ndim(self) -> int:
    """The number of dimensions."""
    return len(self._shape)

  @property
  def dtype(self) -> np.dtype:
    """The numpy dtype of the voxels."""
    return self._dtype

  def _read(self, index: tuple) -> np.ndarray:
    raise NotImplementedError

  def __getitem__(self, index) -> np.ndarray:
    return np.asarray(self._read(_numpy_index(index, self.shape)))

  def read(self, box: bounding_box.BoundingBox) -> np.ndarray:
    """The zyx (or czyx) contents of an xyz box inside the volume."""
    return self[(Ellipsis,) + box.to_slice()]

  def __array__(self, dtype=None, copy=None):
    del copy
    data = self[...]
    return data if dtype is None else data.astype(dtype)

  def close(self) -> None:
    """Releases the file (reads after this fail)."""

  def voxel_size_xyz(self) -> Optional[tuple[float, ...]]:
    """The xyz voxel size (nm) the volume's metadata records, or None when it has none."""
    # HDF5 `resolution` is CREMI's zyx.
    return volume_metadata.voxel_size_from_attrs(self.attrs, 'zyx')

  def __enter__(self) -> 'Volume':
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def __repr__(self) -> str:
    return f'{type(self).__name__}({self.name!r}, shape={self.shape}, dtype={self.dtype})'


class Hdf5Volume(Volume):
  """An HDF5 dataset."""

  def __init__(self, spec: VolumeSpec):
    self.dataset = open_hdf5_dataset(spec)
    super().__init__(str(spec), self.dataset.shape, self.dataset.dtype, dict(self.dataset.attrs))

  def _read(self, index: tuple) -> np.ndarray:
    # h5py reads forward only: read reversed slices forward, then flip them.
    forward, flips = [], []
    for i in index:
      if isinstance(i, slice) and i.step < 0:
        picked = range(i.start, -1 if i.stop is None else i.stop, i.step)
        forward.append(slice(picked[-1], picked[0] + 1, -i.step) if picked else slice(0, 0))
        flips.append(len(forward) - 1)
      else:
        forward.append(i)
    data = np.asarray(self.dataset[tuple(forward)])
    if flips:
      axes = [a for a, i in enumerate(forward) if not isinstance(i, (int, np.integer))]
      data = np.flip(data, [axes.index(f) for f in flips])
    return data

  def close(self) -> None:
    self.dataset.file.close()


class TensorStoreVolume(Volume):
  """A TensorStore array (zarr, N5, precomputed, ...)."""

  def __init__(self, spec_text: str):
    self.store = _open_tensorstore(spec_text)
    super().__init__(spec_text, self.store.shape, self.store.dtype.numpy_dtype,
                     _tensorstore_attrs(tensorstore_spec(spec_text)))

  def _read(self, index: tuple) -> np.ndarray:
    return self.store[index].read().result()

  def voxel_size_xyz(self) -> Optional[tuple[float, ...]]:
    """The voxel size TensorStore reads (precomputed, N5), else the one the attributes hold."""
    units = list(self.store.dimension_units)[-3:]
    nm = {'nm': 1.0, 'um': 1e3, 'm': 1e9}
    if len(units) == 3 and all(u is not None and u.base_unit in nm for u in units):
      # The store is [c]zyx here.
      return tuple(float(u.multiplier) * nm[u.base_unit] for u in units)[::-1]
    return volume_metadata.voxel_size_from_attrs(self.attrs, 'xyz')


_ATTRS_FILES = {'zarr': '.zattrs', 'zarr3': 'zarr.json', 'n5': 'attributes.json'}


def _tensorstore_attrs(spec: dict) -> dict:
  """The user attributes stored beside a file-backed zarr/N5 array (empty when none)."""
  kvstore = spec.get('kvstore')
  if not isinstance(kvstore, dict) or kvstore.get('driver') != 'file':
    return {}
  base = os.path.join(kvstore.get('path', ''), spec.get('path', ''))
  name = _ATTRS_FILES.get(spec.get('driver'))
  if name and os.path.exists(os.path.join(base, name)):
    with open(os.path.join(base, name)) as f:
      attrs = json.load(f)
    return attrs.get('attributes', {}) if spec['driver'] == 'zarr3' else attrs
  return {}


def parse_spec(spec):
  """Checks a volume spec of any form without opening it: a VolumeSpec (HDF5) or the string."""
  if isinstance(spec, (VolumeSpec, Volume)):
    return spec
  if _is_tensorstore(spec):
    tensorstore_spec(spec)
    return spec.strip()
  return parse_volume_spec(spec, with_name=False)


def open_volume(spec, ndims: Optional[Sequence[int]] = None) -> Volume:
  """Opens a volume of any accepted spec form for lazy reads; `ndims` lists the allowed ranks."""
  if isinstance(spec, Volume):
    volume = spec
  elif isinstance(spec, VolumeSpec):
    volume = Hdf5Volume(spec)
  elif _is_tensorstore(spec):
    volume = TensorStoreVolume(spec)
  else:
    volume = Hdf5Volume(parse_volume_spec(spec))
  if ndims is not None and volume.ndim not in ndims:
    volume.close()
    want = ' or '.join({3: '3-D (z, y, x)', 4: '4-D (c, z, y, x)'}.get(n, f'{n}-D') for n in ndims)
    raise VolumeSpecError(f'the volume {str(spec)!r} has shape {volume.shape}; expected a {want} '
                          'volume')
  return volume


def read_volume(spec, ndims: Sequence[int] = (3,)) -> np.ndarray:
  """The whole contents of a volume (checked to have one of `ndims` ranks)."""
  with open_volume(spec, ndims) as volume:
    return volume[...]


def open_decorated(settings) -> Volume:
  """Opens the volume a DecoratedVolume proto names (hdf5 or tensorstore; 3-D or 4-D)."""
  source = settings.WhichOneof('volume_path')
  if source == 'volinfo':
    raise errors.UnsupportedError(
        f'DecoratedVolume.volinfo ({settings.volinfo!r}) names a Google-internal VolumeStore, '
        'which is not available here; use hdf5 ("file.h5:dataset") or tensorstore (JSON spec)')
  if settings.HasField('decorator_specs'):
    raise VolumeSpecError('DecoratedVolume.decorator_specs is only valid with volinfo volumes, '
                          f'got it with {source}')
  if source == 'hdf5':
    spec = parse_volume_spec(settings.hdf5, with_name=False)
  elif source == 'tensorstore':
    spec = settings.tensorstore
    if not spec.lstrip().startswith('{'):
      raise VolumeSpecError(f'DecoratedVolume.tensorstore must be a JSON object, got {spec!r}')
  else:
    raise VolumeSpecError('DecoratedVolume has no volume set; expected hdf5 ("file.h5:dataset") '
                          'or tensorstore (a JSON spec)')
  return open_volume(spec, ndims=(3, 4))


# ----------------------------------------------------------------------------
# Writing.


class WritableVolume:
  """A new volume written box by box; it appears under its name only on `commit()`."""

  def __init__(self, spec, shape_zyx: Sequence[int], dtype, chunks_zyx=None,
               fill_value=0):
    self.shape = tuple(int(n) for n in shape_zyx)
    self.dtype = np.dtype(dtype)
    self.attrs: dict = {}
    self._committed = False
    if _is_tensorstore(spec):
      self._init_tensorstore(spec, chunks_zyx, fill_value)
    else:
      self._init_hdf5(spec, chunks_zyx, fill_value)

  def _init_hdf5(self, spec, chunks_zyx, fill_value) -> None:
    import h5py  # pylint: disable=g-import-not-at-top
    self._spec = spec if isinstance(spec, VolumeSpec) else parse_volume_spec(spec, with_name=False)
    path = atomic.check_output(self._spec.path)
    existing = os.path.exists(path)
    if existing and not h5py.is_hdf5(path):
      raise VolumeSpecError(f'{self._spec.path} exists and is not an HDF5 file; refusing to '
                            f'replace it with dataset {self._spec.dataset!r}')
    self._renaming = contextlib.ExitStack()
    tmp = self._renaming.enter_context(atomic.atomic_path(self._spec.path, suffix='.h5'))
    if existing:
      # The file's other datasets stay: the dataset is replaced in a copy renamed back.
      shutil.copyfile(path, tmp)
    self._file = h5py.File(tmp, 'a' if existing else 'w')
    if self._spec.dataset in self._file:
      del self._file[self._spec.dataset]
    self._dataset = self._file.create_dataset(
        self._spec.dataset, shape=self.shape, dtype=self.dtype, fillvalue=fill_value,
        chunks=tuple(chunks_zyx) if chunks_zyx else True, compression='gzip')
    self._store = None

  def _init_tensorstore(self, spec_text: str, chunks_zyx, fill_value) -> None:
    import tensorstore as ts  # pylint: disable=g-import-not-at-top
    spec = tensorstore_spec(spec_text)
    kvstore = spec.get('kvstore')
    self._final = self._tmp = None
    if isinstance(kvstore, dict) and kvstore.get('driver') == 'file' and not spec.get('path'):
      # Written under a temporary sibling name, renamed on commit.
      self._final = kvstore['path'].rstrip('/')
      # e.g. n5:///abs/out.n5/segmentation, a dataset in a container not made yet.
      os.makedirs(os.path.dirname(os.path.abspath(self._final)), exist_ok=True)
      atomic.remove_stale_temporaries(self._final)
      self._tmp = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(self._final)),
                                   prefix=atomic.temporary_prefix(self._final) + locks.owner_tag()
                                   + '.', suffix='.tmp')
      spec = dict(spec, kvstore=dict(kvstore, path=self._tmp))
    chunks = list(chunks_zyx) if chunks_zyx else [min(n, 64) for n in self.shape]
    xyz = _xyz_driver(spec)
    shape = list(self.shape[::-1] if xyz else self.shape)
    chunks = chunks[::-1] if xyz else chunks
    options: dict[str, Any] = {'create': True, 'dtype': ts.dtype(self.dtype.name), 'shape': shape}
    if spec['driver'] == 'neuroglancer_precomputed':
      shape.append(1)
      spec.setdefault('multiscale_metadata', {'data_type': self.dtype.name, 'num_channels': 1,
                                             'type': 'image'})
      spec.setdefault('scale_metadata', {}).update(
          {'size': shape[:3], 'chunk_size': chunks, 'encoding': 'raw'})
      options = {'create': True}
    else:
      options['chunk_layout'] = ts.ChunkLayout(chunk_shape=chunks)
      if spec['driver'] != 'n5':
        options['fill_value'] = fill_value
      if spec['driver'] == 'zarr3' and 'metadata' not in spec:
        # TensorStore's zarr v3 default is uncompressed and leaves the axes unnamed.
        spec['metadata'] = {'codecs': [{'name': 'bytes', 'configuration': {'endian': 'little'}},
                                       {'name': 'gzip', 'configuration': {'level': 5}}],
                            'dimension_names': ['c', 'z', 'y', 'x'][-len(shape):]}
    try:
      store = ts.open(spec, **options).result()
    except ValueError as e:
      raise VolumeSpecError(f'cannot create TensorStore volume {spec_text!r}: {e}') from e
    self._spec_json = spec
    self._store = _to_zyx(store, spec)
    self._dataset = None
    if fill_value and spec['driver'] in ('n5', 'neuroglancer_precomputed'):
      # These formats read missing chunks as 0: write the fill value out.
      self._store.write(np.full(self.shape, fill_value, self.dtype)).result()

  def __setitem__(self, index, value) -> None:
    value = np.asarray(value, dtype=self.dtype)
    if self._store is None:
      self._dataset[index] = value
    else:
      self._store[index].write(value).result()

  def write(self, box: bounding_box.BoundingBox, array_zyx: np.ndarray) -> None:
    """Writes the zyx array of an xyz box."""
    self[box.to_slice()] = array_zyx

  def commit(self) -> None:
    """Finishes the volume and moves it to its final name."""
    if self._committed:
      return
    self._committed = True
    if self._store is None:
      for key, value in self.attrs.items():
        self._dataset.attrs[key] = value
      self._file.close()
      self._renaming.close()
      return
    self._store = None
    if self.attrs:
      _write_tensorstore_attrs(self._spec_json, self.attrs)
    if self._final is not None:
      if os.path.isdir(self._final):
        shutil.rmtree(self._final)
      os.replace(self._tmp, self._final)
      if self._spec_json['driver'] == 'n5':
        mark_n5_container(os.path.dirname(os.path.abspath(self._final)))

  def abort(self) -> None:
    """Drops everything written."""
    if self._committed:
      return
    self._committed = True
    if self._store is None:
      self._file.close()
      aborted = VolumeSpecError('aborted')
      self._renaming.__exit__(VolumeSpecError, aborted, None)
    elif self._tmp is not None:
      shutil.rmtree(self._tmp, ignore_errors=True)

  def __enter__(self) -> 'WritableVolume':
    return self

  def __exit__(self, exc_type, *exc) -> None:
    if exc_type is None:
      self.commit()
    else:
      self.abort()


def _write_tensorstore_attrs(spec: dict, attrs: dict) -> None:
  """Adds user attributes to a file-backed zarr (v2 or v3) or N5 array."""
  name = _ATTRS_FILES.get(spec.get('driver'))
  if name is None:
    return
  path = os.path.join(spec['kvstore']['path'], spec.get('path', ''), name)
  current = {}
  if os.path.exists(path):
    with open(path) as f:
      current = json.load(f)
  values = {k: v if isinstance(v, (dict, str)) else np.asarray(v).tolist()
            for k, v in attrs.items()}
  if spec['driver'] == 'zarr3':
    current.setdefault('attributes', {}).update(values)
  else:
    current.update(values)
  atomic.atomic_write_text(path, json.dumps(current))


def write_attrs(spec, attrs: dict) -> None:
  """Adds attributes to an existing volume: HDF5 dataset attributes, or zarr/N5 JSON."""
  parsed = parse_spec(spec)
  if isinstance(parsed, VolumeSpec):
    dataset = open_hdf5_dataset(parsed, 'r+')
    try:
      dataset.attrs.update(attrs)
    finally:
      dataset.file.close()
  else:
    _write_tensorstore_attrs(tensorstore_spec(parsed), attrs)


def open_tensorstore_for_writing(spec_text: str):
  """An existing TensorStore volume (JSON spec or short URL) for box writes, as a [c]zyx store.

  For volumes that several processes fill, each its own chunks (a blockwise
  run's stitched output); `create_volume` makes the volume first.
  """
  spec = tensorstore_spec(spec_text)
  import tensorstore as ts  # pylint: disable=g-import-not-at-top  (only needed for these specs)
  try:
    store = ts.open(spec, open=True, read=True, write=True).result()
  except ValueError as e:
    raise VolumeSpecError(f'cannot open TensorStore spec {spec_text!r} for writing: {e}') from e
  return _to_zyx(store, spec)


def mark_n5_container(directory: str) -> None:
  """Gives a `*.n5` directory holding a dataset the container's `n5` version key, if it has none.

  z5py, n5-java and neuroglancer open a dataset through its container, which
  they know by that key; an existing attributes.json is left as it is.
  """
  path = os.path.join(directory, 'attributes.json')
  if directory.endswith('.n5') and not os.path.exists(path):
    atomic.atomic_write_text(path, json.dumps({'n5': volume_metadata.N5_VERSION}))


def create_volume(spec, shape_zyx: Sequence[int], dtype, chunks_zyx=None,
                  fill_value=0) -> WritableVolume:
  """A new volume of any spec form, written by box; committed (renamed into place) on success."""
  return WritableVolume(spec, shape_zyx, dtype, chunks_zyx, fill_value)
