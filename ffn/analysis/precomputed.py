"""Neuroglancer precomputed segmentations: every chunk, segment properties, scales, meshes.

Works on a volume tensorstore has written (scale 0, uint64, xyz voxel indices
starting at `voxel_offset`) and reads it back slab by slab, so no pass holds
more than one slab (or one mesh block) of the volume.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Iterable, Sequence

import numpy as np

from ffn.utils import atomic
from ffn.utils import bounding_box

SEGMENT_PROPERTIES_DIR = 'segment_properties'
MESH_DIR = 'mesh'
# Mesh blocks are cut in this many voxels per axis (xyz); neighbours share one voxel face.
MESH_BLOCK = 128
# Triangles kept: about 1 in MESH_REDUCTION, each vertex moved at most one voxel (zmesh's
# default error bound), as igneous simplifies its meshes.
MESH_REDUCTION = 10


def _open(path: str, scale_index: int = 0, **kwargs):
  """Scale `scale_index` of the volume at `path` as a store indexed xyz from its voxel_offset."""
  import tensorstore as ts  # pylint: disable=g-import-not-at-top
  store = ts.open({'driver': 'neuroglancer_precomputed',
                   'kvstore': {'driver': 'file', 'path': path},
                   'scale_index': scale_index}, **kwargs).result()
  return store[..., 0]


def create(path: str, box: bounding_box.BoundingBox, voxel_size_xyz: Sequence[float],
           offset_xyz: Sequence[int], chunk_xyz: Sequence[int]):
  """Creates scale 0 of an empty uint64 segmentation; returns it indexed xyz from 0."""
  import tensorstore as ts  # pylint: disable=g-import-not-at-top
  store = ts.open({
      'driver': 'neuroglancer_precomputed', 'kvstore': {'driver': 'file', 'path': path},
      'store_data_equal_to_fill_value': True,
      'multiscale_metadata': {'type': 'segmentation', 'data_type': 'uint64', 'num_channels': 1},
      'scale_metadata': {
          'size': [int(v) for v in box.size], 'voxel_offset': [int(v) for v in offset_xyz],
          'resolution': [float(v) for v in voxel_size_xyz],
          'encoding': 'compressed_segmentation',
          'compressed_segmentation_block_size': [8, 8, 8],
          'chunk_size': [int(v) for v in chunk_xyz]},
  }, create=True).result()
  return store[ts.d[:].translate_to[0]][..., 0]


def _chunk_boxes(size_xyz: Sequence[int], chunk_xyz: Sequence[int]):
  """The chunk grid of a volume of `size_xyz` as boxes from 0 (the last ones cut short)."""
  ranges = [range(0, int(n), int(c)) for n, c in zip(size_xyz, chunk_xyz)]
  for start in itertools.product(*ranges):
    end = np.minimum(np.add(start, chunk_xyz), size_xyz)
    yield bounding_box.BoundingBox(start=start, end=end)


def fill_unwritten_chunks(store, size_xyz: Sequence[int], chunk_xyz: Sequence[int],
                          written: Iterable[bounding_box.BoundingBox]) -> int:
  """Writes zeros into every chunk no written box touched; returns how many.

  Readers such as cloud-volume refuse a region with a missing chunk, so the
  space between result subvolumes must exist as background (the store must be
  opened with store_data_equal_to_fill_value, or zero chunks are skipped).
  """
  written = list(written)
  filled = 0
  for chunk in _chunk_boxes(size_xyz, chunk_xyz):
    if any(bounding_box.intersection(chunk, box) is not None for box in written):
      continue
    lo, hi = chunk.start, chunk.end
    store[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].write(
        np.zeros(tuple(chunk.size), np.uint64)).result()
    filled += 1
  return filled


def _slabs(store, depth: int):
  """The store's contents as (z start, xyz array) slabs of `depth` z-planes."""
  z0, z1 = int(store.domain.inclusive_min[2]), int(store.domain.exclusive_max[2])
  for z in range(z0, z1, depth):
    yield z, store[:, :, z:min(z + depth, z1)].read().result()


def voxel_counts(path: str, depth: int) -> dict[int, int]:
  """Voxels per nonzero id in scale 0, read in slabs of `depth` z-planes."""
  counts: dict[int, int] = {}
  for _, slab in _slabs(_open(path), depth):
    ids, n = np.unique(slab, return_counts=True)
    for label, count in zip(ids.tolist(), n.tolist()):
      if label:
        counts[label] = counts.get(label, 0) + count
  return counts


def write_segment_properties(path: str, counts: dict[int, int]) -> None:
  """Adds neuroglancer segment properties: each id with its voxel count (a number property)."""
  ids = sorted(counts)
  values = [counts[i] for i in ids]
  # Number properties are 32-bit; counts past uint32 are given as float32.
  data_type = 'uint32' if not values or max(values) < 2**32 else 'float32'
  properties = {'@type': 'neuroglancer_segment_properties', 'inline': {
      'ids': [str(i) for i in ids],
      'properties': [{'id': 'voxels', 'type': 'number', 'data_type': data_type,
                      'description': 'voxels in the segment', 'values': values}]}}
  os.makedirs(os.path.join(path, SEGMENT_PROPERTIES_DIR), exist_ok=True)
  atomic.atomic_write_text(os.path.join(path, SEGMENT_PROPERTIES_DIR, 'info'),
                           json.dumps(properties))
  _update_info(path, segment_properties=SEGMENT_PROPERTIES_DIR)


def _update_info(path: str, **fields) -> None:
  info_path = os.path.join(path, 'info')
  with open(info_path) as f:
    info = json.load(f)
  info.update(fields)
  atomic.atomic_write_text(info_path, json.dumps(info))


def add_downsampled_scales(path: str, count: int, chunk_xyz: Sequence[int]) -> None:
  """Adds `count` scales, each half the previous in x, y and z (the most frequent id wins)."""
  import tensorstore as ts  # pylint: disable=g-import-not-at-top
  for level in range(1, count + 1):
    previous = _open(path, level - 1)
    coarse = ts.downsample(previous, [2, 2, 2], 'mode')
    lo = [int(v) for v in coarse.domain.inclusive_min]
    hi = [int(v) for v in coarse.domain.exclusive_max]
    with open(os.path.join(path, 'info')) as f:
      resolution = json.load(f)['scales'][level - 1]['resolution']
    size = [h - l for l, h in zip(lo, hi)]
    target = ts.open({
        'driver': 'neuroglancer_precomputed', 'kvstore': {'driver': 'file', 'path': path},
        'store_data_equal_to_fill_value': True,
        'scale_metadata': {
            'size': size, 'voxel_offset': lo, 'resolution': [2 * float(r) for r in resolution],
            'encoding': 'compressed_segmentation', 'compressed_segmentation_block_size': [8, 8, 8],
            'chunk_size': [int(max(1, min(c, s))) for c, s in zip(chunk_xyz, size)]},
    }, create=True, open=True).result()[..., 0]
    depth = int(max(1, min(chunk_xyz[2], size[2])))
    for z in range(lo[2], hi[2], depth):
      z_end = min(z + depth, hi[2])
      target[:, :, z:z_end].write(coarse[:, :, z:z_end].read().result()).result()


def write_meshes(path: str, voxel_size_xyz: Sequence[float]) -> int:
  """Meshes every id of scale 0 with zmesh, block by block (neuroglancer legacy fragments).

  Returns the number of meshed segments. Vertices are in nm of the global
  space (voxel_offset included), as neuroglancer and cloud-volume place them.
  """
  import zmesh  # pylint: disable=g-import-not-at-top
  store = _open(path)
  lo = np.asarray(store.domain.inclusive_min, dtype=np.int64)
  hi = np.asarray(store.domain.exclusive_max, dtype=np.int64)
  resolution = np.asarray(voxel_size_xyz, dtype=np.float64)
  mesh_dir = os.path.join(path, MESH_DIR)
  os.makedirs(mesh_dir, exist_ok=True)
  fragments: dict[int, list[str]] = {}
  mesher = zmesh.Mesher(tuple(resolution))
  ranges = [range(int(a), int(b), MESH_BLOCK) for a, b in zip(lo, hi)]
  for start in itertools.product(*ranges):
    start = np.asarray(start)
    # One voxel more on the far sides, so that neighbouring fragments meet without a gap.
    end = np.minimum(start + MESH_BLOCK + 1, hi)
    labels = store[start[0]:end[0], start[1]:end[1], start[2]:end[2]].read().result()
    mesher.mesh(np.asfortranarray(labels))
    for label in mesher.ids():
      # Voxel i spans [i, i+1) in neuroglancer's space: surfaces on voxel faces, not centres.
      mesh = mesher.get(int(label), normals=False, voxel_centered=True,
                        reduction_factor=MESH_REDUCTION)
      mesh.vertices = (mesh.vertices + start * resolution).astype(np.float32)
      name = (f'{int(label)}:0:' + '_'.join(f'{a}-{b}' for a, b in zip(start, end)))
      with open(os.path.join(mesh_dir, name), 'wb') as f:
        f.write(mesh.to_precomputed())
      fragments.setdefault(int(label), []).append(name)
    mesher.clear()
  # Plain writes: the export's directory is renamed into place only when complete.
  for label, names in fragments.items():
    with open(os.path.join(mesh_dir, f'{label}:0'), 'w') as f:
      json.dump({'fragments': names}, f)
  atomic.atomic_write_text(os.path.join(mesh_dir, 'info'),
                           json.dumps({'@type': 'neuroglancer_legacy_mesh'}))
  _update_info(path, mesh=MESH_DIR)
  return len(fragments)
