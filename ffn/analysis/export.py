"""Writes segmentations for other tools: HDF5, zarr, N5, neuroglancer precomputed, PNG slices.

Sources are inference result subvolumes (one or many, placed at their global
corners in one volume) or any HDF5 volume spec. Data moves one subvolume or one
z-slab at a time, so the whole volume is never in memory. The output appears
under its final name only when complete; an existing output is replaced only
when `overwrite` is set.

Geometry recorded with the data (voxel size in nm, offset in voxels):
  * hdf5: dataset attributes `voxel_size_xyz`, `offset_xyz`, and CREMI-style
    `resolution` (zyx, nm) and `offset` (zyx, nm); array axes zyx.
  * zarr (v2, or v3 with `zarr_format=3`; gzip): a group whose attributes hold
    OME-NGFF multiscales (0.4 for v2, 0.5 for v3: axes z, y, x in nanometer,
    scale and translation in nm), with the array `<dataset_name>` (zyx) whose
    attributes hold funlib.persistence's `voxel_size`, `offset` (zyx, nm),
    `axis_names`, `units`, and `voxel_size_xyz`, `offset_xyz`; v2 names the
    axes in `_ARRAY_DIMENSIONS`, v3 in `dimension_names`.
  * n5: a container (root `attributes.json` with the `n5` version) holding the
    dataset `<dataset_name>`, axes xyz (N5's fastest-first convention); its
    `attributes.json` has `resolution`, `pixelResolution`, `offset` (nm),
    `units`, `axes` (all xyz), `voxel_size_xyz`, `offset_xyz`.
  * precomputed: a neuroglancer `segmentation` volume (uint64,
    compressed_segmentation encoding) whose `info` holds `resolution` and
    `voxel_offset` (its voxel indices are global), every chunk of the box
    written (0 between subvolumes), segment properties (voxels per id) and
    optionally downsampled scales and meshes (`ffn.analysis.precomputed`).
  * png: `slice_<z>.png` per z slice rendered by `ffn.utils.npz_to_png` (RGB
    colour per id, or the ids as 16-bit grey), plus `geometry.json` with
    `voxel_size_xyz` and `offset_xyz`.

Signed integer ids are written as uint64 to zarr, N5 and precomputed (neuroglancer
shows no signed segmentations); a negative id is refused.

Ids: result subvolumes are segmented independently, so their ids collide; the
ids of each subvolume after the first are shifted past the largest id written so
far (objects are not reconciled across subvolume borders). Where subvolumes
overlap, the later one (in corner order) wins.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import time
import zipfile
from typing import Iterator, Optional, Sequence

from absl import logging
import numpy as np

from ffn.analysis import results
from ffn.analysis import precomputed
from ffn.inference.io import results as inference_results
from ffn.utils import atomic
from ffn.utils import axes
from ffn.utils import bounding_box
from ffn.utils import errors
from ffn.utils import volume_metadata
from ffn.utils import volumes

FORMATS = ('hdf5', 'zarr', 'n5', 'precomputed', 'png')
ZARR_FORMATS = (2, 3)
_NAME_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]*$')
_EXTENSIONS = {'.h5': 'hdf5', '.hdf5': 'hdf5', '.hdf': 'hdf5', '.zarr': 'zarr', '.n5': 'n5'}


class ExportError(errors.FFNError):
  """Bad export request: unknown format, existing output, unusable source."""


# The export name of the result spec: subvolumes in a directory (all when corners_xyz is None).
ResultVolumes = results.ResultSpec


@dataclasses.dataclass(frozen=True)
class Geometry:
  """Where the exported volume sits: voxel size (nm, xyz) and offset (voxels, xyz)."""
  voxel_size_xyz: tuple[float, float, float] = (1.0, 1.0, 1.0)
  offset_xyz: tuple[int, int, int] = (0, 0, 0)


def infer_format(output_path: str, output_format: Optional[str]) -> str:
  """The output format: `output_format` if given (checked), else from the path's extension."""
  if output_format is not None:
    if output_format not in FORMATS:
      raise ExportError(f'unknown output format {output_format!r}; expected one of {FORMATS}')
    return output_format
  ext = os.path.splitext(output_path.rstrip('/\\'))[1].lower()
  if ext not in _EXTENSIONS:
    raise ExportError(f'cannot tell the format of {output_path!r} from its extension; '
                      f'give one of {FORMATS} (or use .h5, .zarr, .n5)')
  return _EXTENSIONS[ext]


# ----------------------------------------------------------------------------
# Sources: an iterator of (zyx block, global box) pieces plus the overall box.


def _npz_shape(path: str) -> tuple[int, ...]:
  """The shape of the `segmentation` array in a saved npz, read from its header only."""
  try:
    with zipfile.ZipFile(path) as archive, archive.open('segmentation.npy') as f:
      version = np.lib.format.read_magic(f)
      if version == (1, 0):
        shape, _, _ = np.lib.format.read_array_header_1_0(f)
      else:
        shape, _, _ = np.lib.format.read_array_header_2_0(f)
  except (zipfile.BadZipFile, KeyError, ValueError, EOFError) as e:
    raise ExportError(f'{path} is not a readable segmentation npz ({e})') from None
  return tuple(shape)


class _ResultPieces:
  """Result subvolumes, one at a time, with ids shifted so that they do not collide."""

  def __init__(self, source: ResultVolumes):
    self._source = source
    if not os.path.isdir(source.directory):
      raise ExportError(f'result directory {source.directory!r} does not exist')
    if source.corners_xyz is None:
      corners_zyx = inference_results.get_existing_corners(source.directory)
      if not corners_zyx:
        raise ExportError(f'no result subvolumes (seg-*.npz) in {source.directory!r}')
    else:
      corners_zyx = sorted(axes.xyz_to_zyx(int(c) for c in corner) for corner in source.corners_xyz)
    self.boxes = []
    for corner_zyx in corners_zyx:
      path = inference_results.get_existing_subvolume_path(source.directory, corner_zyx)
      if path is None:
        expected = inference_results.segmentation_path(source.directory, corner_zyx)
        raise ExportError(f'no result subvolume at corner {axes.zyx_to_xyz(corner_zyx)} (xyz) in '
                          f'{source.directory!r}; expected {expected}')
      shape = _npz_shape(path)
      self.boxes.append(bounding_box.BoundingBox.from_zyx(corner_zyx, shape[:3]))
    self.box = bounding_box.containing(*self.boxes)
    self.dtype = np.dtype(np.uint64)

  def __iter__(self) -> Iterator[tuple[np.ndarray, bounding_box.BoundingBox]]:
    id_offset = 0
    for box in self.boxes:
      labels = self._source.load(box.start).astype(np.uint64, copy=False)
      if id_offset:
        labels[labels != 0] += np.uint64(id_offset)
      if labels.size:
        id_offset = max(id_offset, int(labels.max()))
      yield labels, box


class _VolumePieces:
  """An HDF5 volume, in z-slabs of `slab_depth`."""

  def __init__(self, spec, slab_depth: int):
    self._spec = spec
    self._slab_depth = max(int(slab_depth), 1)
    with volumes.open_volume(spec, ndims=(3,)) as volume:
      self.box = bounding_box.BoundingBox.from_zyx((0, 0, 0), volume.shape)
      self.dtype = np.dtype(volume.dtype)
    self.boxes = [self.box]

  def __iter__(self) -> Iterator[tuple[np.ndarray, bounding_box.BoundingBox]]:
    with volumes.open_volume(self._spec) as volume:
      depth = int(self.box.size[2])
      for z in range(0, depth, self._slab_depth):
        slab = bounding_box.BoundingBox(start=(0, 0, z), size=(
            self.box.size[0], self.box.size[1], min(self._slab_depth, depth - z)))
        yield volume.read(slab), slab


# ----------------------------------------------------------------------------
# Writers. Each takes pieces in global coordinates and writes them at box - origin.


def _as_dtype(block: np.ndarray, dtype: np.dtype, box: bounding_box.BoundingBox) -> np.ndarray:
  """The block in the output dtype; negative ids cannot become uint64 ones."""
  block = np.asarray(block)
  if (dtype == np.uint64 and np.issubdtype(block.dtype, np.signedinteger) and block.size
      and int(block.min()) < 0):
    raise ExportError(f'segment ids must be >= 0 to be written as uint64, but {box} holds id '
                      f'{int(block.min())}')
  return block.astype(dtype, copy=False)


def _ts_write_all(store, pieces, origin: bounding_box.BoundingBox, xyz_axes: bool,
                  dtype: np.dtype) -> None:
  """Writes every piece into a tensorstore array (zyx, or xyz[c] when `xyz_axes`)."""
  for block, box in _logged(pieces, origin):
    block = _as_dtype(block, dtype, box)
    local = box.start - origin.start
    if xyz_axes:
      target = store[local[0]:local[0] + box.size[0], local[1]:local[1] + box.size[1],
                     local[2]:local[2] + box.size[2]]
      target.write(block.transpose(2, 1, 0)).result()
    else:
      z, y, x = local[::-1]
      dz, dy, dx = box.size_zyx
      store[z:z + dz, y:y + dy, x:x + dx].write(block).result()


def _logged(pieces, origin: bounding_box.BoundingBox):
  """Passes pieces through, logging progress (pieces, voxels/s)."""
  start = time.time()
  voxels = 0
  total = int(np.prod(origin.size))
  for i, (block, box) in enumerate(pieces):
    yield block, box
    voxels += int(np.prod(box.size))
    elapsed = max(time.time() - start, 1e-9)
    logging.info('exported piece %d (%s): %d of %d voxels, %.1f Mvoxel/s', i + 1,
                 box, voxels, total, voxels / elapsed / 1e6)


def _chunk_zyx(chunk_xyz: Sequence[int], size_zyx: Sequence[int]) -> list[int]:
  return [int(max(1, min(c, s))) for c, s in zip(axes.xyz_to_zyx(chunk_xyz), size_zyx)]


def _write_hdf5(spec: volumes.VolumeSpec, pieces, box, dtype, geometry: Geometry,
                chunk_xyz: Sequence[int]) -> None:
  """Writes dataset `spec.dataset` of `spec.path`, keeping the file's other datasets."""
  with volumes.create_volume(spec, box.size_zyx, dtype,
                             chunks_zyx=_chunk_zyx(chunk_xyz, box.size_zyx)) as out:
    for block, piece_box in _logged(pieces, box):
      out[_local_slice(piece_box, box)] = block
    out.attrs.update(volume_metadata.hdf5_attrs(geometry.voxel_size_xyz, geometry.offset_xyz))


def _hdf5_dataset_exists(spec: volumes.VolumeSpec) -> bool:
  """Whether `spec.path` is an HDF5 file that already holds `spec.dataset`."""
  import h5py  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(spec.path) or not h5py.is_hdf5(spec.path):
    return False
  with h5py.File(spec.path, 'r') as f:
    return spec.dataset in f


def _local_slice(piece_box: bounding_box.BoundingBox, box: bounding_box.BoundingBox):
  """The zyx index expression of `piece_box` inside an array that covers `box`."""
  return bounding_box.BoundingBox(start=piece_box.start - box.start,
                                  size=piece_box.size).to_slice()


def _geometry_attrs(geometry: Geometry) -> dict:
  return volume_metadata.own_attrs(geometry.voxel_size_xyz, geometry.offset_xyz)


def _check_name(dataset_name: str, output_format: str) -> None:
  """Refuses array names that are not one plain directory name inside the container."""
  if not _NAME_RE.match(dataset_name):
    raise ExportError(f'dataset name {dataset_name!r} for {output_format} output must be one '
                      'plain name (letters, digits, _ - .), e.g. segmentation')


def _write_json(path: str, obj: dict) -> None:
  atomic.atomic_write_text(path, json.dumps(obj, indent=2))


def _write_zarr(path: str, pieces, box, dtype, geometry: Geometry, chunk_xyz, *,
                dataset_name: str, zarr_format: int) -> None:
  """A zarr group (OME-NGFF metadata) holding the array `dataset_name` (zyx, gzip)."""
  import tensorstore as ts  # pylint: disable=g-import-not-at-top
  voxel_size, offset = geometry.voxel_size_xyz, geometry.offset_xyz
  array_attrs = volume_metadata.array_attrs('zarr' if zarr_format == 2 else 'zarr3', voxel_size,
                                            offset)
  chunks = _chunk_zyx(chunk_xyz, box.size_zyx)
  kvstore = {'driver': 'file', 'path': os.path.join(path, dataset_name)}
  if zarr_format == 2:
    spec = {'driver': 'zarr', 'kvstore': kvstore, 'metadata': {
        'shape': list(box.size_zyx), 'chunks': chunks,
        'dtype': np.dtype(dtype).newbyteorder('<').str,
        'compressor': {'id': 'gzip', 'level': 5}, 'fill_value': 0}}
  else:
    spec = {'driver': 'zarr3', 'kvstore': kvstore, 'metadata': {
        'shape': list(box.size_zyx), 'data_type': np.dtype(dtype).name,
        'chunk_grid': {'name': 'regular', 'configuration': {'chunk_shape': chunks}},
        'codecs': [{'name': 'bytes', 'configuration': {'endian': 'little'}},
                   {'name': 'gzip', 'configuration': {'level': 5}}],
        'dimension_names': list(volume_metadata.ZYX), 'fill_value': 0,
        'attributes': array_attrs}}
  store = ts.open(spec, create=True).result()
  _ts_write_all(store, pieces, box, xyz_axes=False, dtype=dtype)
  group_attrs = volume_metadata.ome_multiscales([dataset_name], voxel_size, offset, [1],
                                                dataset_name, zarr_format)
  if zarr_format == 2:
    _write_json(os.path.join(path, dataset_name, '.zattrs'), array_attrs)
    _write_json(os.path.join(path, '.zgroup'), {'zarr_format': 2})
    _write_json(os.path.join(path, '.zattrs'), group_attrs)
  else:
    _write_json(os.path.join(path, 'zarr.json'), {'zarr_format': 3, 'node_type': 'group',
                                                  'attributes': group_attrs})


def _write_n5(path: str, pieces, box, dtype, geometry: Geometry, chunk_xyz, *,
              dataset_name: str) -> None:
  """An N5 container holding the dataset `dataset_name` (axes xyz, gzip)."""
  import tensorstore as ts  # pylint: disable=g-import-not-at-top
  dataset_path = os.path.join(path, dataset_name)
  store = ts.open({
      'driver': 'n5', 'kvstore': {'driver': 'file', 'path': dataset_path},
      'metadata': {'dimensions': [int(v) for v in box.size],
                   'blockSize': _chunk_zyx(chunk_xyz, box.size_zyx)[::-1],
                   'dataType': np.dtype(dtype).name,
                   'compression': {'type': 'gzip'}},
  }, create=True).result()
  _ts_write_all(store, pieces, box, xyz_axes=True, dtype=dtype)
  attrs_path = os.path.join(dataset_path, 'attributes.json')
  with open(attrs_path) as f:
    attrs = json.load(f)
  attrs.update(volume_metadata.n5_dataset_attrs(geometry.voxel_size_xyz, geometry.offset_xyz))
  _write_json(attrs_path, attrs)
  # The version key makes the directory an N5 container for z5py, n5-java and neuroglancer.
  _write_json(os.path.join(path, 'attributes.json'), {'n5': volume_metadata.N5_VERSION})


def _write_png(path: str, pieces, box, dtype, geometry: Geometry, chunk_xyz,
               png_mode: str = 'color') -> None:
  """One `slice_<z>.png` per z slice, rendered by npz_to_png (colour per id, or 16-bit ids)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from ffn.utils import npz_to_png  # pylint: disable=g-import-not-at-top
  del chunk_xyz
  if png_mode not in npz_to_png.MODES:
    raise ExportError(f'unknown PNG mode {png_mode!r}; expected one of {npz_to_png.MODES}')
  depth = int(box.size[2])
  digits = max(4, len(str(depth - 1)))
  # PNG slices need whole xy planes: gather pieces into z-slabs of the output box.
  for slab, slab_box in _logged(_to_z_slabs(pieces, box, dtype), box):
    if png_mode == 'gray16' and slab.size and int(slab.max()) > 0xFFFF:
      raise ExportError(f'PNG mode gray16 holds ids up to 65535, but the volume has id '
                        f'{int(slab.max())}; use the color mode')
    for i, plane in enumerate(slab):
      z = int(slab_box.start[2] - box.start[2]) + i
      Image.fromarray(npz_to_png.render_slice(plane, png_mode)).save(
          os.path.join(path, f'slice_{z:0{digits}d}.png'), format='PNG')
  atomic.atomic_write_text(os.path.join(path, 'geometry.json'),
                           json.dumps(_geometry_attrs(geometry), indent=2))


def _to_z_slabs(pieces, box, dtype):
  """Re-blocks pieces into full-xy z-slabs (pieces must come in z order, as results do)."""
  # Results are sorted by zyx corner, so a z-slab is complete once a piece starts below it.
  pending = {}
  for block, piece_box in pieces:
    for z in range(int(piece_box.start[2]), int(piece_box.end[2])):
      pending.setdefault(z, np.zeros(tuple(box.size_zyx[1:]), dtype=dtype))
      y0, x0 = (piece_box.start - box.start)[1::-1]
      dy, dx = piece_box.size_zyx[1:]
      pending[z][y0:y0 + dy, x0:x0 + dx] = block[z - piece_box.start[2]]
    done = sorted(z for z in pending if z < piece_box.start[2])
    yield from _flush(pending, done, box)
  yield from _flush(pending, sorted(pending), box)


def _flush(pending: dict, zs: list, box):
  for z in zs:
    plane = pending.pop(z)
    yield plane[np.newaxis], bounding_box.BoundingBox(
        start=(box.start[0], box.start[1], z), size=(box.size[0], box.size[1], 1))


def _write_precomputed(path: str, pieces, box, dtype, geometry: Geometry, chunk_xyz, *,
                       downsample: int, meshes: bool) -> None:
  """A neuroglancer segmentation: every chunk, segment properties, optional scales and meshes."""
  del dtype  # Always uint64.
  chunks = _chunk_zyx(chunk_xyz, box.size_zyx)[::-1]
  store = precomputed.create(path, box, geometry.voxel_size_xyz, geometry.offset_xyz, chunks)
  written = []

  def remember(pieces):
    for block, piece_box in pieces:
      written.append(bounding_box.BoundingBox(start=piece_box.start - box.start,
                                              size=piece_box.size))
      yield block, piece_box
  _ts_write_all(store, remember(pieces), box, xyz_axes=True, dtype=np.dtype(np.uint64))
  filled = precomputed.fill_unwritten_chunks(store, box.size, chunks, written)
  if filled:
    logging.info('wrote %d chunks of background between the result subvolumes', filled)
  counts = precomputed.voxel_counts(path, depth=chunks[2])
  precomputed.write_segment_properties(path, counts)
  if downsample:
    precomputed.add_downsampled_scales(path, downsample, chunks)
  if meshes:
    meshed = precomputed.write_meshes(path, geometry.voxel_size_xyz)
    logging.info('meshed %d segments', meshed)


_WRITERS = {'zarr': _write_zarr, 'n5': _write_n5, 'precomputed': _write_precomputed}


# ----------------------------------------------------------------------------
# Atomic outputs.


@contextlib.contextmanager
def _atomic_directory(path: str, overwrite: bool) -> Iterator[str]:
  """atomic.atomic_directory, with an ExportError if `path` appeared while exporting."""
  wrote = False
  try:
    with atomic.atomic_directory(path, overwrite) as tmp:
      yield tmp
      wrote = True
  except FileExistsError as e:
    if not wrote:
      raise
    raise ExportError(f'output {path!r} appeared while exporting; not replacing it') from e


def export(source, output_path: str, output_format: Optional[str] = None, *,
           geometry: Optional[Geometry] = None, overwrite: bool = False,
           dataset_name: str = 'segmentation', chunk_xyz: Sequence[int] = (64, 64, 64),
           png_mode: str = 'color', zarr_format: Optional[int] = None, downsample: int = 0,
           meshes: bool = False) -> str:
  """Exports `source` (ResultVolumes or a volume spec) to `output_path`; returns the format.

  For results, `geometry.offset_xyz` defaults to the global corner of the
  first voxel; for volume specs to 0. `dataset_name` is the array inside an
  HDF5 file, zarr group or N5 container. `png_mode` is npz_to_png's 'color' or
  'gray16' (ids as 16-bit grey, for tools that need the labels back).
  `zarr_format` (2, the default, or 3) is for zarr only; `downsample` (extra
  scales, each halving x, y and z) and `meshes` for precomputed only.
  """
  output_format = infer_format(output_path, output_format)
  _check_options(output_format, dataset_name, zarr_format, downsample, meshes)
  zarr_format = 2 if zarr_format is None else zarr_format
  hdf5_spec = volumes.VolumeSpec(output_path, dataset_name) if output_format == 'hdf5' else None
  if hdf5_spec is not None:
    # A file of several datasets is shared: only the dataset written is the output.
    if os.path.isdir(output_path):
      raise ExportError(f'output {output_path!r} is a directory; HDF5 output is a file')
    if _hdf5_dataset_exists(hdf5_spec) and not overwrite:
      raise ExportError(f'output {output_path!r} already holds dataset {dataset_name!r}; pass '
                        'overwrite (--overwrite) to replace it (its other datasets are kept)')
    if not isinstance(source, ResultVolumes):
      volumes.check_output_not_input(hdf5_spec, [source], 'output')
  elif os.path.lexists(output_path) and not overwrite:
    raise ExportError(f'output {output_path!r} exists; pass overwrite (--overwrite) to replace it')
  elif not isinstance(source, ResultVolumes):
    volumes.check_output_not_input(output_path, [source], 'output')
  if isinstance(source, ResultVolumes):
    results_dir = os.path.realpath(source.directory)
    if (results_dir + os.sep).startswith(os.path.realpath(output_path) + os.sep):
      raise ExportError(f'output {output_path!r} holds the results being exported '
                        f'({source.directory!r}); give another output path')
  if len(chunk_xyz) != 3 or min(chunk_xyz) < 1:
    raise ExportError(f'chunk size must be 3 positive integers (xyz), got {chunk_xyz!r}')

  if isinstance(source, ResultVolumes):
    pieces = _ResultPieces(source)
    default_offset = tuple(int(v) for v in pieces.box.start)
  else:
    pieces = _VolumePieces(source, slab_depth=chunk_xyz[2])
    default_offset = (0, 0, 0)
  if geometry is None:
    geometry = Geometry(offset_xyz=default_offset)
  elif geometry.offset_xyz is None:
    geometry = dataclasses.replace(geometry, offset_xyz=default_offset)
  if len(geometry.voxel_size_xyz) != 3 or min(geometry.voxel_size_xyz) <= 0:
    raise ExportError(f'voxel size must be 3 positive numbers (xyz), got '
                      f'{geometry.voxel_size_xyz!r}')
  box = pieces.box
  if output_format in ('precomputed', 'png') and not np.issubdtype(pieces.dtype, np.integer):
    raise ExportError(f'{output_format} output holds segment ids; {source} has dtype '
                      f'{pieces.dtype}')
  dtype = _output_dtype(pieces.dtype, output_format)
  logging.info('exporting %s (%s voxels, xyz %s at %s) to %s as %s', source,
               int(np.prod(box.size)), box.size.tolist(), box.start.tolist(), output_path,
               output_format)

  if output_format == 'hdf5':
    _write_hdf5(hdf5_spec, pieces, box, dtype, geometry, chunk_xyz)
  elif output_format == 'png':
    with _atomic_directory(output_path, overwrite) as tmp:
      _write_png(tmp, pieces, box, dtype, geometry, chunk_xyz, png_mode)
  else:
    options = {'zarr': {'dataset_name': dataset_name, 'zarr_format': zarr_format},
               'n5': {'dataset_name': dataset_name},
               'precomputed': {'downsample': downsample, 'meshes': meshes}}[output_format]
    with _atomic_directory(output_path, overwrite) as tmp:
      _WRITERS[output_format](tmp, pieces, box, dtype, geometry, chunk_xyz, **options)
  return output_format


def _check_options(output_format: str, dataset_name: str, zarr_format: Optional[int],
                   downsample: int, meshes: bool) -> None:
  """Refuses options the chosen format has no use for, and bad values."""
  if zarr_format is not None:
    if output_format != 'zarr':
      raise ExportError(f'zarr format {zarr_format} given for {output_format} output; it is '
                        'for zarr output only')
    if zarr_format not in (2, 3):
      raise ExportError(f'zarr format must be 2 or 3, got {zarr_format!r}')
  if (downsample or meshes) and output_format != 'precomputed':
    given = 'downsample' if downsample else 'meshes'
    raise ExportError(f'{given} given for {output_format} output; it is for precomputed '
                      'output only')
  if not isinstance(downsample, int) or downsample < 0:
    raise ExportError(f'downsample must be a count of extra scales >= 0, got {downsample!r}')
  if output_format in ('zarr', 'n5'):
    _check_name(dataset_name, output_format)
  if meshes:
    try:
      import zmesh  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      raise ExportError('meshes need the zmesh package (pip install zmesh)') from None


def _output_dtype(dtype: np.dtype, output_format: str) -> np.dtype:
  """Signed ids become uint64 for the formats neuroglancer reads (it has no signed labels)."""
  if output_format in ('zarr', 'n5', 'precomputed') and np.issubdtype(dtype, np.signedinteger):
    return np.dtype(np.uint64)
  return np.dtype(dtype)


# ----------------------------------------------------------------------------
# Reading back (for tests and for users checking an export).


def read_export(path: str, output_format: Optional[str] = None,
                dataset_name: str = 'segmentation') -> tuple[np.ndarray, Geometry]:
  """Reads an export back as (zyx array, geometry)."""
  output_format = infer_format(path, output_format)
  if output_format == 'hdf5':
    import h5py  # pylint: disable=g-import-not-at-top
    with h5py.File(path, 'r') as f:
      dataset = f[dataset_name]
      return dataset[...], Geometry(tuple(dataset.attrs['voxel_size_xyz'].tolist()),
                                    tuple(int(v) for v in dataset.attrs['offset_xyz']))
  if output_format == 'png':
    raise ExportError('PNG exports are read with PIL, slice by slice')
  import tensorstore as ts  # pylint: disable=g-import-not-at-top
  kvstore = {'driver': 'file', 'path': path}
  if output_format == 'precomputed':
    store = ts.open({'driver': 'neuroglancer_precomputed', 'kvstore': kvstore}).result()
    with open(os.path.join(path, 'info')) as f:
      scale = json.load(f)['scales'][0]
    data = store.read().result()[..., 0].transpose(2, 1, 0)
    return data, Geometry(tuple(float(v) for v in scale['resolution']),
                          tuple(int(v) for v in scale['voxel_offset']))
  array_path = os.path.join(path, dataset_name)
  if output_format == 'n5':
    driver, attrs_name = 'n5', 'attributes.json'
  elif os.path.exists(os.path.join(array_path, 'zarr.json')):
    driver, attrs_name = 'zarr3', 'zarr.json'
  else:
    driver, attrs_name = 'zarr', '.zattrs'
  store = ts.open({'driver': driver, 'kvstore': dict(kvstore, path=array_path)}).result()
  data = store.read().result()
  with open(os.path.join(array_path, attrs_name)) as f:
    attrs = json.load(f)
  attrs = attrs.get('attributes', {}) if driver == 'zarr3' else attrs
  if output_format == 'n5':
    data = data.transpose(2, 1, 0)
  return data, Geometry(tuple(attrs['voxel_size_xyz']), tuple(attrs['offset_xyz']))
