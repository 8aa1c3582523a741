"""The one parser for volume specs: `[name:]path:dataset`, Windows paths, and `@` separators.

Accepted forms (parsed from the right, so paths may contain the separator):
  path/to/vol.h5:raw                   -> path, dataset
  validation1:path/to/vol.h5:raw       -> name, path, dataset
  C:\\data\\vol.h5:raw                 -> a Windows drive letter is part of the path
  validation1:C:\\data\\vol.h5:raw
  validation1@C:\\data\\af.h5@af       -> ffn_windows' `@` separator (used when '@' appears)
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Iterable, Optional

_DRIVE_RE = re.compile(r'^[A-Za-z]:[\\/]')


class VolumeSpecError(ValueError):
  """A volume spec that cannot be parsed or opened."""


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
  """Parses one spec; `with_name` True requires a name, False forbids one, None allows both."""
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


def parse_named_volume_specs(specs: Iterable[str]) -> dict[str, VolumeSpec]:
  """Parses `name:path:dataset` entries (a list or a comma-joined string) into name -> spec."""
  if isinstance(specs, str):
    specs = [s for s in specs.split(',') if s.strip()]
  result: dict[str, VolumeSpec] = {}
  for entry in specs:
    spec = parse_volume_spec(entry, with_name=True)
    if spec.name in result:
      raise VolumeSpecError(f'volume name {spec.name!r} is given twice: {entry!r}')
    result[spec.name] = spec
  if not result:
    raise VolumeSpecError('no volume specs given; expected name:path:dataset[,...]')
  return result


def open_volume(spec, mode: str = 'r'):
  """Opens the HDF5 dataset of a spec (or spec string) lazily; clear errors for missing parts."""
  import h5py  # Imported here so that parsing works without h5py.
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
