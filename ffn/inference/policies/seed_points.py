"""Seeds where the user points: a list of global xyz voxel positions, optionally with ids.

`PolicyPoints` grows objects only from the given points, in the given order
(diluvian's sparse fill). The points come inline (`"points": [[x, y, z], ...]`
or `[[x, y, z, id], ...]`) or from a text file of `x,y,z` or `x,y,z,id` lines
(`"points_file"`; blank lines and `#` comments are skipped), in voxels of the
whole image. A point's id, where given, becomes its object's id unless that id
is taken already. Points outside the subvolume, or too near its border for a
full field of view, are skipped and counted in the log.
"""

from __future__ import annotations

import logging
import os
from typing import Optional, Sequence

import numpy as np

from ffn.inference.policies.seed_base import BaseSeedPolicy
from ffn.utils import axes
from ffn.utils import errors

# Object ids live in an int32 segmentation while a subvolume is segmented.
MAX_POINT_ID = 2**31 - 1


class PointsError(errors.FFNError):
  """A list of seed points that cannot be read."""


class OtherPointsError(PointsError):
  """A checkpoint made with other seed points than the request's hold now."""

  def __init__(self):
    super().__init__('the checkpoint was made with other seed points than the request\'s '
                     'points or points_file hold now; restore them, or delete the .cpoint '
                     'to start this subvolume again')


def _parse_point(values: Sequence, where: str) -> tuple[int, int, int, int]:
  """(x, y, z, id) of one point; id 0 when none is given."""
  if not 3 <= len(values) <= 4:
    raise PointsError(f'{where} has {len(values)} values; expected x,y,z or x,y,z,id')
  parsed = []
  for value in values:
    try:
      number = float(value)
    except (TypeError, ValueError):
      raise PointsError(f'{where}: {errors.shown(value)} is not a number') from None
    if not number.is_integer():
      raise PointsError(f'{where}: {errors.shown(value)} is not a whole voxel coordinate')
    parsed.append(int(number))
  x, y, z = parsed[:3]
  point_id = parsed[3] if len(parsed) == 4 else 0
  if min(x, y, z) < 0:
    raise PointsError(f'{where}: ({x}, {y}, {z}) (xyz) is negative; the image begins at 0')
  if not 0 <= point_id <= MAX_POINT_ID:
    raise PointsError(f'{where}: id {point_id} is outside 1 .. {MAX_POINT_ID} (0: no id)')
  return x, y, z, point_id


def read_points_file(path: str) -> np.ndarray:
  """The (N, 4) int64 array of (x, y, z, id) of a points file (id 0: none given)."""
  try:
    with open(path) as f:
      lines = f.read().splitlines()
  except UnicodeDecodeError as e:
    raise PointsError(f'points_file {path} is not text: {e}') from e
  rows = []
  for number, line in enumerate(lines, start=1):
    text = line.split('#', 1)[0].strip()
    if text:
      fields = [v for v in text.replace(',', ' ').split()]
      rows.append(_parse_point(fields, f'points_file {path} line {number}'))
  return np.array(rows, dtype=np.int64).reshape(-1, 4)


def parse_points(points: Optional[Sequence] = None,
                 points_file: Optional[str] = None) -> np.ndarray:
  """The (N, 4) int64 (x, y, z, id) array of inline `points` or of `points_file`."""
  if (points is None) == (points_file is None):
    raise PointsError('PolicyPoints needs either "points" ([[x, y, z], ...]) or "points_file" '
                      '(a file of x,y,z lines) in seed_policy_args')
  if points_file is not None:
    if not os.path.isfile(points_file):
      raise PointsError(f'points_file {points_file} is not a file')
    return read_points_file(points_file)
  if not isinstance(points, (list, tuple)):
    raise PointsError(f'points {errors.shown(points)} is not a list of [x, y, z] lists')
  rows = []
  for i, point in enumerate(points):
    if not isinstance(point, (list, tuple)):
      raise PointsError(f'points[{i}] {errors.shown(point)} is not an [x, y, z] list')
    rows.append(_parse_point(point, f'points[{i}]'))
  return np.array(rows, dtype=np.int64).reshape(-1, 4)


class PolicyPoints(BaseSeedPolicy):
  """The given points (global xyz) inside the subvolume, in the given order (see module doc)."""

  def __init__(self, canvas, points: Optional[list] = None, points_file: Optional[str] = None,
               corner=(0, 0, 0), **kwargs):
    super().__init__(canvas, **kwargs)
    self.points = parse_points(points, points_file)
    self.corner_zyx = tuple(int(c) for c in (corner if corner is not None else (0, 0, 0)))
    self._ids: Optional[dict[tuple[int, int, int], int]] = None

  @classmethod
  def check_arguments(cls, kwargs, field: str, from_runner: bool = True) -> None:
    super().check_arguments(kwargs, field, from_runner)
    parse_points(kwargs.get('points'), kwargs.get('points_file'))

  def _local_zyx(self) -> np.ndarray:
    """The points' zyx positions in the subvolume (some may lie outside it)."""
    return axes.points_zyx(self.points, self.corner_zyx)

  def _split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(local zyx, inside the subvolume, with room for a full FOV) of the points."""
    zyx = self._local_zyx()
    shape = np.asarray(self.canvas.shape, np.int64)
    margin = np.asarray(self.canvas.margin, np.int64)
    inside = np.all((zyx >= 0) & (zyx < shape), axis=1)
    room = np.all((zyx >= margin) & (zyx < shape - margin), axis=1)
    return zyx, inside, room

  def init_coords(self) -> None:
    zyx, inside, room = self._split()
    logging.info('points: %d of %d in this subvolume seed; %d outside it and %d too near its '
                 'border for a full field of view are skipped', np.sum(room), len(zyx),
                 np.sum(~inside), np.sum(inside & ~room))
    self.coords = zyx[room]

  def seeds_zyx(self) -> np.ndarray:
    """The (N, 3) local zyx seeds this policy yields, in order (fixed by its points)."""
    zyx, _, room = self._split()
    return zyx[room]

  def set_state(self, state) -> None:
    """Restores a checkpoint's seeds, refusing those of other points than today's."""
    super().set_state(state)
    if self.coords is not None and not np.array_equal(self.coords.reshape(-1, 3),
                                                      self.seeds_zyx()):
      raise OtherPointsError()

  def id_at(self, pos) -> Optional[int]:
    if self._ids is None:
      self._ids = {}
      for p, point_id in zip(self._local_zyx(), self.points[:, 3]):
        self._ids.setdefault(tuple(int(v) for v in p), int(point_id))
    return self._ids.get(tuple(int(v) for v in pos)) or None
