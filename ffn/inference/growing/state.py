"""The segmentation state of one subvolume: what its result and its checkpoint hold.

One dataclass, one field list: the checkpoint file (`checkpoint_file`) stores
exactly these fields, and the result (`io.results`) is made of them. All
arrays are zyx.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np

from ffn.inference.io.probmaps import quantize_probability
from ffn.inference.io.results import OriginInfo
from ffn.utils.axes import Position

# The quantised probability given to the voxels of an initial segmentation.
_CERTAIN = quantize_probability(np.array([1.0]))[0]


@dataclasses.dataclass
class SubvolumeState:
  """The segments of a subvolume, as objects are added one by one in seed order."""
  # Segment ids (> 0, local to the subvolume), 0 unsegmented, -1 a seed that failed.
  segmentation: np.ndarray
  # The quantised object probability of every segmented voxel (uint8); None: not kept.
  seg_prob: Optional[np.ndarray]
  # id -> where its seed was, the FOVs it took and the seconds it grew.
  origins: dict[int, OriginInfo]
  # id -> (2, K) [earlier ids it overlapped when grown, voxels above threshold there].
  overlaps: dict[int, np.ndarray]
  # Ids of the initial segmentation -> their local ids.
  global_to_local_ids: dict[int, int]
  # The largest id taken so far (ids of failed objects are not reused).
  max_id: int = 0

  @classmethod
  def empty(cls, shape, keep_probability_maps: bool = True) -> SubvolumeState:
    """The state of a subvolume of zyx `shape` before any object."""
    shape = tuple(int(s) for s in shape)
    return cls(segmentation=np.zeros(shape, np.int32),
               seg_prob=np.zeros(shape, np.uint8) if keep_probability_maps else None,
               origins={}, overlaps={}, global_to_local_ids={})

  @property
  def shape(self) -> tuple[int, ...]:
    return tuple(self.segmentation.shape)

  def is_free(self, pos: Position) -> bool:
    """Whether no segment holds `pos` (the one rule growing objects reads the segmentation by)."""
    return self.segmentation[pos] <= 0

  def next_segment_id(self) -> int:
    """Takes the next free segment id."""
    self.max_id += 1
    while self.max_id in self.origins:
      self.max_id += 1
    return self.max_id

  def local_id(self, segment_id: int) -> int:
    """The local id of a segment id of the initial segmentation."""
    return self.global_to_local_ids.get(segment_id, segment_id)

  def set_initial_segmentation(self, labels: np.ndarray,
                               align: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> None:
    """Starts from the segments of `labels` (any ids, 0 background), made contiguous from 1.

    `align` maps the relabelled array onto the subvolume (labels may cover more).
    """
    ids, local = np.unique(labels, return_inverse=True)
    # 0 stays background even where the labels have no background voxel.
    if ids.size and ids[0] != 0:
      local = local + 1
      new_ids = np.arange(1, ids.size + 1)
    else:
      new_ids = np.arange(ids.size)
    self.global_to_local_ids = {int(g): int(n) for g, n in zip(ids, new_ids) if g != 0}
    local = local.reshape(labels.shape).astype(np.int32)
    self.segmentation[:] = align(local) if align is not None else local
    if self.seg_prob is not None:
      self.seg_prob[self.segmentation > 0] = _CERTAIN
    self.max_id = int(self.segmentation.max(initial=0))

  def take_over(self, other: SubvolumeState) -> None:
    """Takes the contents of `other` (a restored checkpoint) into this state's own arrays.

    A field `other` lacks (None: a 2019 checkpoint) keeps its value here; a
    missing max_id is the largest id in the segmentation.
    """
    self.segmentation[:] = other.segmentation
    if self.seg_prob is not None and other.seg_prob is not None:
      self.seg_prob[:] = other.seg_prob
    self.origins = dict(other.origins)
    if other.overlaps is not None:
      self.overlaps = dict(other.overlaps)
    if other.global_to_local_ids is not None:
      self.global_to_local_ids = dict(other.global_to_local_ids)
    self.max_id = (int(other.max_id) if other.max_id is not None
                   else int(self.segmentation.max(initial=0)))


FIELDS = tuple(f.name for f in dataclasses.fields(SubvolumeState))
