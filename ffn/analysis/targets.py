"""Scoring a targeted run: only the groundtruth bodies under the user's points.

A run seeded from points (`PolicyPoints`) segments a few neurons, so it is
judged on those: the target bodies are the groundtruth labels at the points,
and the voxels scored are those of the target bodies plus every voxel of a
segment that overlaps one. A target split into pieces or left unsegmented
then costs split; a segment that runs from a target into another body costs
merge (those voxels keep their own groundtruth label), while bodies that no
target segment reaches are left out.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ffn.utils import axes


@dataclasses.dataclass(frozen=True)
class Targets:
  """The groundtruth bodies under the points, and how many points found none."""
  bodies: tuple[int, ...]
  points: int
  outside: int  # Points outside the scored region.
  on_background: int  # Points on groundtruth 0.

  def to_json_dict(self) -> dict:
    """The JSON entry of the evaluation's inputs."""
    return dataclasses.asdict(self) | {'bodies': list(self.bodies)}


def bodies_under(points_xyz: np.ndarray, groundtruth: np.ndarray,
                 offset_xyz=(0, 0, 0)) -> Targets:
  """The target bodies of global xyz points in zyx `groundtruth` whose voxel 0 is `offset_xyz`."""
  local_zyx = _local_zyx(points_xyz, offset_xyz)
  inside = np.all((local_zyx >= 0) & (local_zyx < np.asarray(groundtruth.shape)), axis=1)
  labels = groundtruth[tuple(local_zyx[inside].T)] if np.any(inside) else np.zeros(0)
  bodies = tuple(sorted({int(v) for v in labels if v != 0}))
  return Targets(bodies, len(local_zyx), int(np.sum(~inside)), int(np.sum(labels == 0)))


def _local_zyx(points_xyz: np.ndarray, offset_xyz) -> np.ndarray:
  """(N, 3) zyx positions in a region whose voxel 0 is global xyz `offset_xyz`."""
  return axes.points_zyx(np.asarray(points_xyz).reshape(-1, 3), axes.xyz_to_zyx(offset_xyz))


def objects_at(points_xyz: np.ndarray, segmentation: np.ndarray, groundtruth: np.ndarray,
               offset_xyz=(0, 0, 0)) -> list[dict]:
  """Per point inside the region: its body, the segment there, and how well one covers the other.

  `recovered` is the share of the body inside that segment, `purity` the share
  of the segment inside the body (both 0 where the point is unsegmented).
  """
  rows = []
  shape = np.asarray(groundtruth.shape)
  for xyz, zyx in zip(np.asarray(points_xyz).reshape(-1, 3), _local_zyx(points_xyz, offset_xyz)):
    if np.any(zyx < 0) or np.any(zyx >= shape):
      continue
    body, segment = int(groundtruth[tuple(zyx)]), int(segmentation[tuple(zyx)])
    in_body = groundtruth == body
    body_voxels = int(np.sum(in_body))
    segment_voxels = int(np.sum(segmentation == segment)) if segment else 0
    both = int(np.sum(in_body & (segmentation == segment))) if segment else 0
    rows.append({'point_xyz': [int(v) for v in xyz], 'body': body, 'segment': segment,
                 'body_voxels': body_voxels, 'segment_voxels': segment_voxels,
                 'recovered': both / max(body_voxels, 1),
                 'purity': both / max(segment_voxels, 1)})
  return rows


def restrict(segmentation: np.ndarray, groundtruth: np.ndarray, bodies
             ) -> tuple[np.ndarray, np.ndarray]:
  """(groundtruth to score, groundtruth of the target bodies alone): 0 elsewhere (module doc)."""
  target = np.isin(groundtruth, np.asarray(bodies, groundtruth.dtype))
  touching = np.unique(segmentation[target])
  reached = np.isin(segmentation, touching[touching != 0])
  scored = np.where(target | reached, groundtruth, 0)
  return scored, np.where(target, groundtruth, 0)
