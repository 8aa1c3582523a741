"""A result to read: inference subvolumes of a segmentation directory, or a volume spec."""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Union

import numpy as np

from ffn.inference.io import results
from ffn.utils import axes
from ffn.utils import volumes


@dataclasses.dataclass(frozen=True)
class ResultSpec:
  """Result subvolumes in `directory` at `corners_xyz` (all of them when None), and read options."""
  directory: str
  corners_xyz: Optional[Sequence[tuple[int, int, int]]] = None
  threshold: Optional[float] = None
  split_cc: bool = True
  min_size: int = 0

  @property
  def corner_xyz(self) -> tuple[int, int, int]:
    """The corner of a spec that names exactly one subvolume."""
    if not self.corners_xyz or len(self.corners_xyz) != 1:
      raise volumes.VolumeSpecError(
          f'result {self.directory!r} needs exactly one corner, got {self.corners_xyz}')
    return tuple(int(c) for c in self.corners_xyz[0])

  def load(self, corner_xyz: Sequence[int]) -> np.ndarray:
    """The zyx labels of the subvolume at `corner_xyz`, with this spec's read options."""
    labels, _ = results.load_segmentation(
        self.directory, axes.xyz_to_zyx(corner_xyz), threshold=self.threshold,
        split_cc=self.split_cc, min_size=self.min_size)
    return labels


def single_result(directory: str, corner_xyz: Sequence[int], threshold: Optional[float] = None,
                  split_cc: bool = True, min_size: int = 0) -> ResultSpec:
  """The ResultSpec of one subvolume."""
  return ResultSpec(directory, (tuple(int(c) for c in corner_xyz),), threshold, split_cc,
                    min_size)


# A segmentation to read: result subvolumes, or a volume of any spec form.
Segmentation = Union[ResultSpec, str, volumes.VolumeSpec]
