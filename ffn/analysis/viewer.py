"""A local neuroglancer viewer for an image, a segmentation and optionally its groundtruth.

The `neuroglancer` package serves its own bundled web client and the volume
data from this process, bound to 127.0.0.1: no internet and no other machine is
involved. Volumes are given zyx (numpy arrays or lazy h5py datasets; only the
chunks the browser asks for are read) with a global xyz offset.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Optional, Sequence

import numpy as np

from ffn.utils import axes
from ffn.utils import errors

LAYER_KINDS = ('image', 'segmentation')


@dataclasses.dataclass
class Layer:
  """One volume to show: `data` is zyx; `offset_xyz` places voxel (0, 0, 0) globally."""
  name: str
  data: Any
  kind: str = 'segmentation'
  offset_xyz: Sequence[int] = (0, 0, 0)


class _AsUint64:
  """A lazy view of an integer array-like as uint64 (the client has no int64 segmentations)."""

  def __init__(self, data):
    self._data = data
    self.shape = tuple(data.shape)
    self.dtype = np.dtype(np.uint64)
    self.ndim = len(self.shape)

  def __getitem__(self, index):
    return np.asarray(self._data[index]).astype(np.uint64)


def _prepare(layer: Layer):
  """The layer's data in a dtype the neuroglancer client can show."""
  data = layer.data
  if len(data.shape) != 3:
    raise errors.FFNError(f'layer {layer.name!r} has shape {tuple(data.shape)}; expected 3-D zyx')
  dtype = np.dtype(data.dtype)
  if layer.kind == 'segmentation':
    if not np.issubdtype(dtype, np.integer):
      raise errors.FFNError(f'segmentation layer {layer.name!r} has dtype {dtype}; expected integers')
    if dtype not in (np.uint32, np.uint64):
      return _AsUint64(data)
  elif dtype == np.float64 or dtype == np.int64:
    return np.asarray(data, dtype=np.float32)
  return data


def build_viewer(layers: Sequence[Layer], voxel_size_xyz: Sequence[float] = (1, 1, 1),
                 bind_address: str = '127.0.0.1', port: int = 0,
                 position_xyz: Optional[Sequence[float]] = None):
  """Starts the local server and returns a neuroglancer.Viewer showing `layers` (xyz nm)."""
  import neuroglancer  # pylint: disable=g-import-not-at-top
  if not layers:
    raise errors.FFNError('the viewer needs at least one layer')
  names = [layer.name for layer in layers]
  if len(set(names)) != len(names):
    raise errors.FFNError(f'layer names must be unique, got {names}')
  for layer in layers:
    if layer.kind not in LAYER_KINDS:
      raise errors.FFNError(f'layer {layer.name!r} has kind {layer.kind!r}; expected {LAYER_KINDS}')
  if len(voxel_size_xyz) != 3 or min(voxel_size_xyz) <= 0:
    raise errors.FFNError(f'voxel size must be 3 positive numbers (xyz), got {voxel_size_xyz!r}')

  neuroglancer.set_server_bind_address(bind_address, port)
  # The client the package ships with, served from this process (never a remote copy).
  neuroglancer.set_static_content_source()
  try:
    viewer = neuroglancer.Viewer()
    viewer.get_viewer_url()  # Starts the server now, so a bind failure is reported here.
  except OSError as e:
    raise errors.FFNError(f'cannot serve the viewer on {bind_address}:{port}: '
                     f'{e.strerror or e}') from None
  scales_zyx = [float(v) for v in axes.xyz_to_zyx(voxel_size_xyz)]
  # Arrays are zyx; naming the axes z, y, x lets neuroglancer show them as x, y, z.
  volume_space = neuroglancer.CoordinateSpace(names=['z', 'y', 'x'], units='nm',
                                              scales=scales_zyx)
  extent_lo = np.full(3, np.inf)
  extent_hi = np.full(3, -np.inf)
  with viewer.txn() as state:
    state.dimensions = neuroglancer.CoordinateSpace(
        names=['x', 'y', 'z'], units='nm', scales=[float(v) for v in voxel_size_xyz])
    for layer in layers:
      offset_zyx = [int(v) for v in axes.xyz_to_zyx(layer.offset_xyz)]
      source = neuroglancer.LocalVolume(_prepare(layer), dimensions=volume_space,
                                        voxel_offset=offset_zyx, volume_type=layer.kind)
      if layer.kind == 'image':
        state.layers[layer.name] = neuroglancer.ImageLayer(source=source)
      else:
        state.layers[layer.name] = neuroglancer.SegmentationLayer(source=source)
      extent_lo = np.minimum(extent_lo, offset_zyx)
      extent_hi = np.maximum(extent_hi, np.add(offset_zyx, layer.data.shape))
    if position_xyz is None:
      position_xyz = ((extent_lo + extent_hi) / 2)[::-1]
    state.position = [float(v) for v in position_xyz]
    # Zoom so that the data spans about 400 screen pixels (scale: voxels per pixel).
    extent_xy = (extent_hi - extent_lo)[1:]
    state.cross_section_scale = float(max(extent_xy.max(), 1)) / 400.0
    state.layout = 'xy'
  return viewer


def serve_forever(viewer, timeout_secs: Optional[float] = None) -> None:
  """Keeps the process (and so the viewer) alive until Ctrl-C or `timeout_secs` have passed."""
  del viewer  # Held by the caller; the server runs on neuroglancer's own thread.
  deadline = None if timeout_secs is None else time.monotonic() + timeout_secs
  try:
    while deadline is None or time.monotonic() < deadline:
      time.sleep(0.2 if deadline is None else min(0.2, max(deadline - time.monotonic(), 0)))
  except KeyboardInterrupt:
    pass
