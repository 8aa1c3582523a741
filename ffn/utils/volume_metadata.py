"""The geometry attributes each reader of an export looks for (zarr, OME-NGFF, funlib, N5).

All take a voxel size in nm and an offset in voxels, both xyz, and return JSON
objects; arrays themselves are zyx in zarr and xyz in N5.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

Number = Union[int, float]

N5_VERSION = '2.0.0'
ZYX = ['z', 'y', 'x']


def _number(value: float) -> Number:
  """An int where the value is integral (funlib.persistence insists on int voxel sizes)."""
  value = float(value)
  return int(value) if value.is_integer() else value


def offset_nm_xyz(voxel_size_xyz: Sequence[float], offset_xyz: Sequence[int]) -> list[Number]:
  """The offset in world units (nm), xyz."""
  return [_number(float(v) * int(o)) for v, o in zip(voxel_size_xyz, offset_xyz)]


def own_attrs(voxel_size_xyz: Sequence[float], offset_xyz: Sequence[int]) -> dict:
  """This project's own keys: voxel size (nm) and offset (voxels), xyz."""
  return {'voxel_size_xyz': [float(v) for v in voxel_size_xyz],
          'offset_xyz': [int(v) for v in offset_xyz]}


def funlib_attrs(voxel_size_xyz: Sequence[float], offset_xyz: Sequence[int]) -> dict:
  """funlib.persistence's array keys: voxel size and offset in nm, zyx like the array."""
  return {'voxel_size': [_number(v) for v in voxel_size_xyz][::-1],
          'offset': offset_nm_xyz(voxel_size_xyz, offset_xyz)[::-1],
          'axis_names': list(ZYX), 'units': ['nm', 'nm', 'nm']}


def zarr_array_attrs(voxel_size_xyz: Sequence[float], offset_xyz: Sequence[int]) -> dict:
  """Every geometry key a zarr array carries: ours, funlib's and xarray's axis names."""
  return dict(own_attrs(voxel_size_xyz, offset_xyz), **funlib_attrs(voxel_size_xyz, offset_xyz),
              _ARRAY_DIMENSIONS=list(ZYX))


def ome_multiscales(dataset_paths: Sequence[str], voxel_size_xyz: Sequence[float],
                    offset_xyz: Sequence[int], factors: Sequence[int], name: str,
                    zarr_format: int) -> dict:
  """The OME-NGFF group attributes of scales `dataset_paths` (0.4 for zarr v2, 0.5 for v3).

  Scale i has voxels `factors[i]` times the base voxel size; translations are nm.
  """
  # OME-NGFF takes UDUNITS-2 unit names; 'nm' is not one of them.
  axes = [{'name': axis, 'type': 'space', 'unit': 'nanometer'} for axis in ZYX]
  datasets = []
  for path, factor in zip(dataset_paths, factors):
    scale = [_number(float(v) * factor) for v in voxel_size_xyz][::-1]
    datasets.append({'path': path, 'coordinateTransformations': [
        {'type': 'scale', 'scale': scale},
        {'type': 'translation', 'translation': offset_nm_xyz(voxel_size_xyz, offset_xyz)[::-1]}]})
  multiscale = {'name': name, 'axes': axes, 'datasets': datasets}
  if zarr_format == 2:
    return {'multiscales': [dict(multiscale, version='0.4')]}
  return {'ome': {'version': '0.5', 'multiscales': [multiscale]}}


def n5_dataset_attrs(voxel_size_xyz: Sequence[float], offset_xyz: Sequence[int]) -> dict:
  """The N5 dataset keys neuroglancer, BigDataViewer and funlib read (xyz, nm), plus ours."""
  resolution = [_number(v) for v in voxel_size_xyz]
  return dict(own_attrs(voxel_size_xyz, offset_xyz), resolution=resolution,
              pixelResolution={'dimensions': resolution, 'unit': 'nm'},
              offset=offset_nm_xyz(voxel_size_xyz, offset_xyz), units=['nm', 'nm', 'nm'],
              axes=['x', 'y', 'z'])


_NM_PER_UNIT = {'nm': 1.0, 'nanometer': 1.0, 'um': 1e3, 'µm': 1e3, 'micrometer': 1e3,
                'm': 1e9, 'meter': 1e9}


def _triple(value) -> Optional[list[float]]:
  """Three positive finite numbers, or None."""
  try:
    numbers = [float(v) for v in value]
  except (TypeError, ValueError):
    return None
  if len(numbers) != 3 or not all(math.isfinite(v) and v > 0 for v in numbers):
    return None
  return numbers


def voxel_size_from_attrs(attrs: dict, resolution_order: str) -> Optional[tuple[float, ...]]:
  """The xyz voxel size in nm that a volume's attributes record, or None.

  Looks for, in order: `voxel_size_xyz` (ours), funlib's `voxel_size` (zyx),
  N5's `pixelResolution`, then `resolution`, which is zyx in CREMI-style HDF5
  and xyz in N5 (`resolution_order`). `units` other than nm are converted.
  """
  units = attrs.get('units')
  if isinstance(units, dict) or (isinstance(units, list) and len(units) != 3):
    units = None
  candidates = [(attrs.get('voxel_size_xyz'), 'xyz', None),
                (attrs.get('voxel_size'), 'zyx', units)]
  pixel = attrs.get('pixelResolution')
  if isinstance(pixel, dict):
    candidates.append((pixel.get('dimensions'), 'xyz', [pixel.get('unit', 'nm')] * 3))
  candidates.append((attrs.get('resolution'), resolution_order, units))
  for value, order, value_units in candidates:
    numbers = _triple(value)
    if numbers is None:
      continue
    factors = [1.0, 1.0, 1.0]
    if value_units:
      factors = [_NM_PER_UNIT.get(str(u).lower()) for u in value_units]
      if None in factors:
        continue
    nm = [v * f for v, f in zip(numbers, factors)]
    return tuple(nm if order == 'xyz' else nm[::-1])
  return None


def hdf5_attrs(voxel_size_xyz: Sequence[float], offset_xyz: Sequence[int]) -> dict:
  """HDF5 dataset keys: ours, and CREMI's `resolution` and `offset` (zyx, nm)."""
  return dict(own_attrs(voxel_size_xyz, offset_xyz),
              resolution=[float(v) for v in voxel_size_xyz][::-1],
              offset=[float(v) for v in offset_nm_xyz(voxel_size_xyz, offset_xyz)][::-1])


def array_attrs(driver: str, voxel_size_xyz: Sequence[float], offset_xyz: Sequence[int]) -> dict:
  """The geometry attributes of one array of `driver` ('hdf5', 'zarr', 'zarr3', 'n5')."""
  if driver == 'hdf5':
    return hdf5_attrs(voxel_size_xyz, offset_xyz)
  if driver == 'zarr':
    return zarr_array_attrs(voxel_size_xyz, offset_xyz)
  if driver == 'zarr3':
    attrs = zarr_array_attrs(voxel_size_xyz, offset_xyz)
    del attrs['_ARRAY_DIMENSIONS']  # v3 names its axes in dimension_names.
    return attrs
  if driver == 'n5':
    return n5_dataset_attrs(voxel_size_xyz, offset_xyz)
  return {}
