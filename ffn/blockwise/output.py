"""The stitched output volume: staged while blocks are written, then committed under its name.

Workers on several machines write their blocks into one staged volume, which
survives a killed run so that a rerun only writes the blocks still missing.
File-backed zarr, N5 and precomputed outputs are staged in their own format
beside the final path (`.<name>.partial`) and renamed on commit; every other
output (HDF5, or a TensorStore spec with an inner path) is staged as zarr in
the run's work directory and copied slab by slab into the final volume on
commit. Until the commit nothing exists under the output's name.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from typing import Sequence

import numpy as np

from ffn.utils import atomic
from ffn.utils import volume_spec

_URL_DRIVERS = {'zarr': 'zarr', 'zarr3': 'zarr3', 'n5': 'n5',
                'precomputed': 'neuroglancer_precomputed'}
_XYZ_DRIVERS = ('n5', 'neuroglancer_precomputed')
DTYPE = np.uint64


class OutputSpecError(ValueError):
  """An --output_volume that cannot be parsed or written."""


def is_tensorstore(spec: str) -> bool:
  """Whether a spec names a TensorStore volume (JSON, or a zarr:// n5:// precomputed:// URL)."""
  spec = spec.strip()
  return spec.startswith('{') or spec.split('://', 1)[0] in _URL_DRIVERS


def tensorstore_json(spec: str) -> dict:
  """The TensorStore JSON object of a JSON spec or a short URL form."""
  spec = spec.strip()
  kind, sep, rest = spec.partition('://')
  if sep and kind in _URL_DRIVERS:
    path, _, key = rest.partition('#')
    if not path:
      raise OutputSpecError(f'volume spec {spec!r} has no path; expected e.g. {kind}:///data/v')
    result = {'driver': _URL_DRIVERS[kind], 'kvstore': {'driver': 'file', 'path': path}}
    if key:
      raise OutputSpecError(f'output volume {spec!r}: a #key is not supported for outputs')
    return result
  try:
    parsed = json.loads(spec)
  except json.JSONDecodeError as e:
    raise OutputSpecError(f'TensorStore spec is not valid JSON ({e}): {spec!r}') from e
  if not isinstance(parsed, dict) or 'driver' not in parsed:
    raise OutputSpecError(f'TensorStore spec must be a JSON object with a driver, got {spec!r}')
  return parsed


def _renamable(ts_spec: dict) -> bool:
  """Whether a TensorStore output is one local directory that can be renamed into place."""
  kvstore = ts_spec.get('kvstore')
  return (isinstance(kvstore, dict) and kvstore.get('driver') == 'file'
          and not ts_spec.get('path') and bool(kvstore.get('path')))


def _with_path(ts_spec: dict, path: str) -> dict:
  """A file-backed TensorStore spec moved to `path`."""
  return dict(ts_spec, kvstore=dict(ts_spec['kvstore'], path=path))


class StitchedOutput:
  """Where the stitched segmentation goes: staging, worker writes and the final commit."""

  def __init__(self, spec: str, work_dir: str):
    self.spec = spec.strip()
    if is_tensorstore(self.spec):
      self._final_ts = tensorstore_json(self.spec)
      self._hdf5 = None
    else:
      try:
        self._hdf5 = volume_spec.parse_volume_spec(self.spec, with_name=False)
      except ValueError as e:
        raise OutputSpecError(f'--output_volume: {e}') from e
      self._final_ts = None
    if self._final_ts is not None and _renamable(self._final_ts):
      final = os.path.abspath(self._final_ts['kvstore']['path'].rstrip('/'))
      self.final_path = final
      staging = os.path.join(os.path.dirname(final), '.' + os.path.basename(final) + '.partial')
      self._staged = _with_path(self._final_ts, staging)
      self._copy_on_commit = False
    else:
      if self._final_ts is not None and self._final_ts['driver'] == 'neuroglancer_precomputed':
        raise OutputSpecError(f'--output_volume {self.spec!r}: a precomputed output must be a '
                              'local directory, e.g. precomputed:///data/seg')
      self.final_path = (os.path.abspath(self._hdf5.path) if self._hdf5 is not None else None)
      staging = os.path.join(os.path.abspath(work_dir), 'staged.zarr')
      self._staged = {'driver': 'zarr', 'kvstore': {'driver': 'file', 'path': staging}}
      self._copy_on_commit = True
    self.staging_path = staging

  def exists(self) -> bool:
    """Whether something already exists under the output's final name."""
    if self.final_path is None:
      return False
    if self._hdf5 is None:
      return os.path.exists(self.final_path)
    if not os.path.exists(self.final_path):
      return False
    import h5py  # pylint: disable=g-import-not-at-top
    with h5py.File(self.final_path, 'r') as f:
      return self._hdf5.dataset in f

  def _open(self, spec: dict, **options):
    import tensorstore as ts  # pylint: disable=g-import-not-at-top
    try:
      store = ts.open(spec, **options).result()
    except ValueError as e:
      raise OutputSpecError(f'cannot open output volume {self.spec!r} '
                            f'(staged at {self.staging_path}): {e}') from e
    if spec.get('driver') in _XYZ_DRIVERS:
      store = store.T
      if spec.get('driver') == 'neuroglancer_precomputed':
        store = store[0]
    return store

  def create_staged(self, shape_zyx: Sequence[int], chunks_zyx: Sequence[int]) -> None:
    """Creates the staged volume, or checks that a staged volume from an earlier run fits."""
    import tensorstore as ts  # pylint: disable=g-import-not-at-top
    shape = [int(n) for n in shape_zyx]
    chunks = [int(c) for c in chunks_zyx]
    if os.path.exists(self.staging_path):
      store = self._open(self._staged, open=True)
      if list(store.shape) != shape:
        raise OutputSpecError(f'the staged output {self.staging_path} has shape '
                              f'{list(store.shape)} (zyx), this run needs {shape}; remove it')
      return
    spec = dict(self._staged)
    driver = spec['driver']
    os.makedirs(os.path.dirname(self.staging_path), exist_ok=True)
    if driver == 'neuroglancer_precomputed':
      spec.setdefault('multiscale_metadata', {'data_type': 'uint64', 'num_channels': 1,
                                             'type': 'segmentation'})
      spec.setdefault('scale_metadata', {}).update(
          {'size': shape[::-1], 'chunk_size': chunks[::-1], 'encoding': 'raw',
           'resolution': spec.get('scale_metadata', {}).get('resolution', [1, 1, 1])})
      options = {'create': True}
    else:
      xyz = driver in _XYZ_DRIVERS
      options = {'create': True, 'dtype': ts.uint64, 'shape': shape[::-1] if xyz else shape,
                 'chunk_layout': ts.ChunkLayout(chunk_shape=chunks[::-1] if xyz else chunks)}
      if driver != 'n5':  # N5 has no fill value: missing chunks read as 0.
        options['fill_value'] = 0
    self._open(spec, **options)

  def write(self, start_zyx: Sequence[int], labels: np.ndarray) -> None:
    """Writes a zyx block of global ids into the staged volume."""
    store = self._open(self._staged, open=True)
    box = tuple(slice(int(s), int(s) + n) for s, n in zip(start_zyx, labels.shape))
    store[box].write(labels.astype(DTYPE)).result()

  def commit(self) -> None:
    """Moves the staged volume to its final name (copying it when the format needs that)."""
    if not self._copy_on_commit:
      os.replace(self.staging_path, self.final_path)
      return
    start = time.time()
    store = self._open(self._staged, open=True)
    if self._hdf5 is not None:
      self._commit_hdf5(store)
    else:
      self._commit_tensorstore(store)
    shutil.rmtree(self.staging_path)
    logging.info('Output %s written in %.1f s.', self.spec, time.time() - start)

  def _slabs(self, store):
    """(z slice, data) of the staged volume, a chunk's depth at a time."""
    depth = int(store.chunk_layout.read_chunk.shape[0] or 64)
    for z in range(0, store.shape[0], depth):
      zs = slice(z, min(z + depth, store.shape[0]))
      yield zs, store[zs].read().result()

  def _commit_hdf5(self, store) -> None:
    import h5py  # pylint: disable=g-import-not-at-top
    path, dataset = self._hdf5.path, self._hdf5.dataset
    chunks = tuple(int(c) for c in store.chunk_layout.read_chunk.shape)
    with atomic.atomic_path(path, suffix='.h5') as tmp:
      if os.path.exists(path):
        shutil.copyfile(path, tmp)  # Other datasets of the file stay.
      with h5py.File(tmp, 'a') as f:
        out = f.create_dataset(dataset, shape=tuple(store.shape), dtype=DTYPE, fillvalue=0,
                               chunks=chunks, compression='gzip')
        for zs, data in self._slabs(store):
          out[zs] = data

  def _commit_tensorstore(self, store) -> None:
    import tensorstore as ts  # pylint: disable=g-import-not-at-top
    spec = self._final_ts
    shape = list(store.shape)
    chunks = list(store.chunk_layout.read_chunk.shape)
    xyz = spec.get('driver') in _XYZ_DRIVERS
    options = {'create': True, 'dtype': ts.uint64, 'shape': shape[::-1] if xyz else shape,
               'chunk_layout': ts.ChunkLayout(chunk_shape=chunks[::-1] if xyz else chunks)}
    out = self._open(spec, **options)
    for zs, data in self._slabs(store):
      out[zs].write(data).result()
