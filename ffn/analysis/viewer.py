"""A local neuroglancer viewer for an image, a segmentation and optionally its groundtruth.

The `neuroglancer` package serves its own bundled web client and the volume
data from this process, bound to 127.0.0.1: no internet and no other machine is
involved. Volumes are given zyx (numpy arrays, or lazy volumes: only the
chunks the browser asks for are read) with a global xyz offset.

The first view is centred on the focus layer (by default the first
segmentation shown), zoomed so that its xy extent fills about
`FIT_PIXELS` screen pixels; hidden layers (groundtruth, by default) are
listed and shown with one click on their name.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Optional, Sequence

import numpy as np

from ffn.utils import axes
from ffn.utils import errors

LAYER_KINDS = ('image', 'segmentation')
# Screen pixels the focus layer's larger xy side spans at first (a panel is ~600-1000 px).
FIT_PIXELS = 500


@dataclasses.dataclass
class Layer:
  """One volume to show: `data` is zyx; `offset_xyz` places voxel (0, 0, 0) globally."""
  name: str
  data: Any
  kind: str = 'segmentation'
  offset_xyz: Sequence[int] = (0, 0, 0)
  visible: bool = True


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


def choose_voxel_size(layers: Sequence[Layer], given_xyz: Optional[Sequence[float]],
                      default_xyz: Sequence[float]) -> tuple[tuple[float, ...], str]:
  """The voxel size to show (xyz nm) and where it came from.

  `given_xyz` when not None; else the first one a layer's own metadata
  records, segmentations before images; else `default_xyz`.
  """
  if given_xyz is not None:
    return tuple(float(v) for v in given_xyz), 'as given'
  for layer in sorted(layers, key=lambda layer: layer.kind != 'segmentation'):
    read = getattr(layer.data, 'voxel_size_xyz', None)
    size = read() if callable(read) else None
    if size is not None:
      return tuple(float(v) for v in size), f"from the {layer.name} volume's metadata"
  return tuple(float(v) for v in default_xyz), 'the default (no volume records one)'


@dataclasses.dataclass(frozen=True)
class View:
  """Where the first view looks: centre (xyz voxels) and zoom (voxels per screen pixel)."""
  position_xyz: tuple[float, float, float]
  cross_section_scale: float
  projection_scale: float


def initial_view(layers: Sequence[Layer], focus: Optional[str] = None) -> View:
  """The view centred on layer `focus` (default: the first segmentation, else all layers)."""
  if focus is not None:
    chosen = [layer for layer in layers if layer.name == focus]
    if not chosen:
      raise errors.FFNError(f'focus layer {focus!r} is not one of {[l.name for l in layers]}')
  else:
    chosen = [layer for layer in layers if layer.kind == 'segmentation'][:1] or list(layers)
  lo = np.min([np.asarray(layer.offset_xyz, float) for layer in chosen], axis=0)
  hi = np.max([np.add(layer.offset_xyz, tuple(layer.data.shape)[::-1]) for layer in chosen],
              axis=0)
  extent = hi - lo
  return View(position_xyz=tuple(float(v) for v in (lo + hi) / 2),
              cross_section_scale=float(max(extent[:2].max(), 1)) / FIT_PIXELS,
              # The 3-D view's zoom is the viewport height in voxels.
              projection_scale=float(max(extent.max(), 1)) * 1.5)


def build_viewer(layers: Sequence[Layer], voxel_size_xyz: Sequence[float] = (1, 1, 1),
                 bind_address: str = '127.0.0.1', port: int = 0,
                 position_xyz: Optional[Sequence[float]] = None, focus: Optional[str] = None):
  """Starts the local server and returns a neuroglancer.Viewer showing `layers` (xyz nm).

  The view starts on `initial_view(layers, focus)`, at `position_xyz` if given.
  """
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
  prepared = [_prepare(layer) for layer in layers]  # Checks shapes and dtypes first.
  view = initial_view(layers, focus)

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
  with viewer.txn() as state:
    state.dimensions = neuroglancer.CoordinateSpace(
        names=['x', 'y', 'z'], units='nm', scales=[float(v) for v in voxel_size_xyz])
    for layer, data in zip(layers, prepared):
      offset_zyx = [int(v) for v in axes.xyz_to_zyx(layer.offset_xyz)]
      source = neuroglancer.LocalVolume(data, dimensions=volume_space,
                                        voxel_offset=offset_zyx, volume_type=layer.kind)
      if layer.kind == 'image':
        state.layers[layer.name] = neuroglancer.ImageLayer(source=source)
      else:
        state.layers[layer.name] = neuroglancer.SegmentationLayer(source=source)
      state.layers[layer.name].visible = bool(layer.visible)
    position_xyz = view.position_xyz if position_xyz is None else position_xyz
    state.position = [float(v) for v in position_xyz]
    state.cross_section_scale = view.cross_section_scale
    state.projection_scale = view.projection_scale
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
