"""The stitched output volume: staged while blocks are written, then committed under its name.

Workers on several machines write their blocks into one staged volume, which
survives a killed run so that a rerun only writes the blocks still missing.
File-backed zarr, N5 and precomputed outputs are staged in their own format
beside the final path (`.<name>.partial`) and renamed on commit; every other
output (HDF5, or a TensorStore spec with an inner path) is staged as zarr in
the run's work directory and copied slab by slab into the final volume on
commit. Until the commit nothing exists under the output's name. Volumes are
opened and created through the volume layer (`ffn.utils.volumes`); zarr v3
outputs are gzip-compressed with named axes (z, y, x), and a given voxel size is
recorded in each format's own attributes (`ffn.utils.volume_metadata`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from typing import Optional, Sequence

import numpy as np

from ffn.utils import volume_metadata
from ffn.utils import volumes

DTYPE = np.uint64


def _renamable(ts_spec: dict) -> bool:
  """Whether a TensorStore output is one local directory that can be renamed into place."""
  kvstore = ts_spec.get('kvstore')
  return (isinstance(kvstore, dict) and kvstore.get('driver') == 'file'
          and not ts_spec.get('path') and bool(kvstore.get('path')))


class StitchedOutput:
  """Where the stitched segmentation goes: staging, worker writes and the final commit."""

  def __init__(self, spec: str, work_dir: str,
               voxel_size_xyz: Optional[Sequence[float]] = None):
    self.spec = spec.strip()
    self._voxel_size = None if voxel_size_xyz is None else tuple(voxel_size_xyz)
    parsed = volumes.parse_spec(self.spec)
    self._hdf5 = parsed if isinstance(parsed, volumes.VolumeSpec) else None
    final_ts = None if self._hdf5 is not None else volumes.tensorstore_spec(self.spec)
    if final_ts is not None and _renamable(final_ts):
      self.final_path = os.path.abspath(final_ts['kvstore']['path'].rstrip('/'))
      self.staging_path = os.path.join(os.path.dirname(self.final_path),
                                       '.' + os.path.basename(self.final_path) + '.partial')
      staged = dict(final_ts, kvstore=dict(final_ts['kvstore'], path=self.staging_path))
      if staged['driver'] == 'neuroglancer_precomputed':
        staged.setdefault('multiscale_metadata', {'data_type': 'uint64', 'num_channels': 1,
                                                  'type': 'segmentation'})
        staged.setdefault('scale_metadata', {}).setdefault(
            'resolution', list(self._voxel_size or (1, 1, 1)))
      self._copy_on_commit = False
    else:
      if final_ts is not None and final_ts.get('driver') == 'neuroglancer_precomputed':
        raise volumes.VolumeSpecError(f'--output_volume {self.spec!r}: a precomputed output '
                                      'must be a local directory, e.g. precomputed:///data/seg')
      self.final_path = os.path.abspath(self._hdf5.path) if self._hdf5 is not None else None
      self.staging_path = os.path.join(os.path.abspath(work_dir), 'staged.zarr')
      staged = {'driver': 'zarr', 'kvstore': {'driver': 'file', 'path': self.staging_path}}
      self._copy_on_commit = True
    self._staged = json.dumps(staged)
    if self._hdf5 is not None:
      self._final_driver = 'hdf5'
    else:
      self._final_driver = final_ts.get('driver') if final_ts is not None else None

  def _attrs(self) -> dict:
    """The geometry attributes of the final volume (its voxel 0 is the image's)."""
    attrs = {}
    if self._final_driver == 'zarr':
      attrs['_ARRAY_DIMENSIONS'] = list(volume_metadata.ZYX)
    if self._voxel_size is not None:
      attrs.update(volume_metadata.array_attrs(self._final_driver, self._voxel_size, (0, 0, 0)))
    return attrs

  def exists(self) -> bool:
    """Whether something already exists under the output's final name."""
    return self.final_path is not None and os.path.exists(self.final_path)

  def create_staged(self, shape_zyx: Sequence[int], chunks_zyx: Sequence[int]) -> None:
    """Creates the staged volume, or checks that a staged volume from an earlier run fits."""
    shape = tuple(int(n) for n in shape_zyx)
    if os.path.exists(self.staging_path):
      staged_shape = tuple(volumes.open_tensorstore_for_writing(self._staged).shape)
      if staged_shape != shape:
        raise volumes.VolumeSpecError(
            f'the staged output {self.staging_path} has shape {staged_shape} (zyx), this run '
            f'needs {shape}; remove it')
      return
    os.makedirs(os.path.dirname(self.staging_path), exist_ok=True)
    # Created under a temporary name and renamed: a staged volume is complete or absent.
    volumes.create_volume(self._staged, shape, DTYPE, chunks_zyx).commit()

  def write(self, start_zyx: Sequence[int], labels: np.ndarray) -> None:
    """Writes a zyx block of global ids into the staged volume."""
    store = volumes.open_tensorstore_for_writing(self._staged)
    box = tuple(slice(int(s), int(s) + n) for s, n in zip(start_zyx, labels.shape))
    store[box].write(labels.astype(DTYPE)).result()

  def commit(self) -> None:
    """Moves the staged volume to its final name (copying it when the format needs that)."""
    if not self._copy_on_commit:
      if self._attrs():
        volumes.write_attrs(self._staged, self._attrs())
      os.replace(self.staging_path, self.final_path)
      if self._final_driver == 'n5':
        volumes.mark_n5_container(os.path.dirname(self.final_path))
      return
    start = time.time()
    with volumes.open_volume(self._staged) as staged:
      chunks = tuple(int(c) for c in staged.store.chunk_layout.read_chunk.shape)
      with volumes.create_volume(self.spec, staged.shape, DTYPE, chunks) as final:
        final.attrs.update(self._attrs())
        for z in range(0, staged.shape[0], chunks[0]):
          final[z:z + chunks[0]] = staged[z:z + chunks[0]]
    shutil.rmtree(self.staging_path)
    logging.info('Output %s written in %.1f s.', self.spec, time.time() - start)
