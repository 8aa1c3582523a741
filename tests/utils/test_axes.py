"""ffn.utils.axes: xyz flags become zyx array indices, and back."""

import numpy as np

from ffn.utils import axes
from ffn.utils import bounding_box


def test_flips_a_non_cubic_size_both_ways():
  size_xyz = (7, 5, 3)
  assert axes.xyz_to_zyx(size_xyz) == (3, 5, 7)
  assert axes.zyx_to_xyz(axes.xyz_to_zyx(size_xyz)) == size_xyz
  assert np.zeros(axes.xyz_to_zyx(size_xyz)).shape == (3, 5, 7)


def test_bounding_box_uses_the_same_convention():
  box = bounding_box.BoundingBox(start=(1, 2, 3), size=(7, 5, 3))
  assert box.size_zyx == axes.xyz_to_zyx(box.size)
  assert bounding_box.BoundingBox.from_zyx(box.start_zyx, box.size_zyx) == box


def test_points_become_zyx_relative_to_a_corner_whatever_their_extra_columns():
  points_xyz = np.array([[1, 20, 300, 7], [4, 50, 600, 8]])  # x, y, z, id
  np.testing.assert_array_equal(axes.points_zyx(points_xyz, (100, 10, 0)),
                                [[200, 10, 1], [500, 40, 4]])
  np.testing.assert_array_equal(axes.points_zyx([[1, 2, 3]]), [[3, 2, 1]])
