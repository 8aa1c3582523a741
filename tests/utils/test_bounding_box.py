"""Tests for ffn.utils.bounding_box and ffn.utils.geom_utils."""

from __future__ import annotations

import numpy as np
import pytest

from ffn.utils import bounding_box
from ffn.utils import bounding_box_pb2
from ffn.utils import geom_utils
from ffn.utils import vector_pb2

BoundingBox = bounding_box.BoundingBox


class TestGeomUtils:

  def test_conversions(self):
    v = geom_utils.to_vector3j((1, 2, 3))
    assert (v.x, v.y, v.z) == (1, 2, 3)
    assert geom_utils.to_3tuple(v) == (1, 2, 3)
    assert geom_utils.to_3tuple(np.array([4, 5, 6])) == (4, 5, 6)
    np.testing.assert_array_equal(geom_utils.to_numpy3_vector(v), [1, 2, 3])
    assert geom_utils.to_numpy3_vector([1, 2, 3]).dtype == np.int64
    assert geom_utils.ToVector3j is geom_utils.to_vector3j

  @pytest.mark.parametrize('bad', [(1, 2), (1, 2, 3, 4), (1.5, 2, 3)])
  def test_rejects_non_triples(self, bad):
    with pytest.raises(ValueError):
      geom_utils.to_3tuple(bad)


class TestBoundingBox:

  def test_constructors_agree(self):
    a = BoundingBox(start=(1, 2, 3), size=(4, 5, 6))
    b = BoundingBox(start=(1, 2, 3), end=(5, 7, 9))
    c = BoundingBox(size=(4, 5, 6), end=(5, 7, 9))
    assert a == b == c
    np.testing.assert_array_equal(a.end, [5, 7, 9])
    assert BoundingBox(a) == a
    assert BoundingBox(a.to_proto()) == a
    assert a == a.to_proto()
    assert hash(a) == hash(b)
    assert a != BoundingBox((1, 2, 3), (4, 5, 7))

  @pytest.mark.parametrize('kwargs', [dict(start=(0, 0, 0)), dict(start=(0, 0, 0), size=(1, 1, 1),
                                                                  end=(1, 1, 1))])
  def test_needs_exactly_two(self, kwargs):
    with pytest.raises(ValueError, match='exactly two'):
      BoundingBox(**kwargs)

  def test_proto_round_trip(self):
    box = BoundingBox(start=(-1, 2, 30), size=(4, 5, 6))
    proto = box.to_proto()
    assert isinstance(proto, bounding_box_pb2.BoundingBox)
    assert (proto.start.x, proto.start.y, proto.start.z) == (-1, 2, 30)
    assert (proto.size.x, proto.size.y, proto.size.z) == (4, 5, 6)
    parsed = bounding_box_pb2.BoundingBox.FromString(proto.SerializeToString())
    assert BoundingBox(parsed) == box

  def test_to_slice_is_zyx(self):
    volume = np.arange(5 * 6 * 7).reshape(5, 6, 7)  # z, y, x
    box = BoundingBox(start=(1, 2, 3), size=(4, 3, 2))  # x, y, z
    crop = volume[box.to_slice()]
    assert crop.shape == (2, 3, 4)
    assert crop[0, 0, 0] == volume[3, 2, 1]
    assert box.start_zyx == (3, 2, 1) and box.size_zyx == (2, 3, 4)
    assert BoundingBox.from_zyx((3, 2, 1), (2, 3, 4)) == box

  def test_adjusted_by_and_sub(self):
    box = BoundingBox(start=(10, 20, 30), size=(10, 10, 10))
    assert box.adjusted_by(start=(1, 2, 3), end=(-1, -2, -3)) == BoundingBox(
        start=(11, 22, 33), end=(19, 28, 37))
    assert box.Sub(start=(1, 1, 1), size=(2, 2, 2)) == BoundingBox((11, 21, 31), (2, 2, 2))
    assert box.Sub(start=(1, 1, 1), end=(3, 4, 5)) == BoundingBox((11, 21, 31), (2, 3, 4))
    assert box.Sub(start=(2, 2, 2)) == BoundingBox((12, 22, 32), (8, 8, 8))
    assert box.Sub() == box

  def test_contains_and_empty(self):
    outer = BoundingBox((0, 0, 0), (10, 10, 10))
    assert outer.contains_box(BoundingBox((2, 2, 2), (8, 8, 8)))
    assert not outer.contains_box(BoundingBox((2, 2, 2), (9, 8, 8)))
    assert BoundingBox((0, 0, 0), (0, 1, 1)).is_empty()
    assert not outer.is_empty()

  def test_intersections_and_containing(self):
    a = BoundingBox((0, 0, 0), (10, 10, 10))
    b = BoundingBox((5, 6, 7), (10, 10, 10))
    c = BoundingBox((20, 0, 0), (1, 1, 1))
    assert bounding_box.intersection(a, b) == BoundingBox(start=(5, 6, 7), end=(10, 10, 10))
    assert bounding_box.intersection(a, c) is None
    assert bounding_box.intersection(a, a.to_proto()) == a
    assert bounding_box.intersections([a, c], [b]) == [bounding_box.intersection(a, b)]
    assert bounding_box.containing(a, b, c) == BoundingBox(start=(0, 0, 0), end=(21, 16, 17))
    assert bounding_box.encompass(a) == a
    with pytest.raises(ValueError):
      bounding_box.containing()
    with pytest.raises(ValueError):
      bounding_box.intersection(a, (1, 2, 3))


class TestOrderlyOverlappingCalculator:

  def test_grid_covers_box_in_raster_order(self):
    outer = BoundingBox((0, 0, 0), (10, 7, 5))
    calc = bounding_box.OrderlyOverlappingCalculator(outer, (4, 4, 4), (1, 1, 1),
                                                     include_small_sub_boxes=True)
    boxes = list(calc.generate_sub_boxes())
    assert calc.num_sub_boxes() == len(boxes) == 4 * 3 * 2
    covered = np.zeros((5, 7, 10), bool)
    for box in boxes:
      assert outer.contains_box(box)
      covered[box.to_slice()] = True
    assert covered.all()
    # Raster order: x changes fastest; index_to_sub_box uses the same order.
    assert [tuple(b.start) for b in boxes[:3]] == [(0, 0, 0), (3, 0, 0), (6, 0, 0)]
    assert [calc.index_to_sub_box(i) for i in range(len(boxes))] == boxes
    batches = [list(batch) for batch in calc.batched_sub_boxes(5)]
    assert sum(batches, []) == boxes and len(batches) == 5

  def test_without_small_boxes_and_back_shift(self):
    outer = BoundingBox((0, 0, 0), (10, 10, 10))
    calc = bounding_box.OrderlyOverlappingCalculator(outer, (4, 4, 4), (2, 2, 2))
    assert calc.num_sub_boxes() == 4 ** 3
    shifted = bounding_box.OrderlyOverlappingCalculator(
        outer, (4, 4, 4), (1, 1, 1), include_small_sub_boxes=True,
        back_shift_small_sub_boxes=True)
    for box in shifted.generate_sub_boxes():
      assert tuple(box.size) == (4, 4, 4) and outer.contains_box(box)

  def test_offsets_and_borders(self):
    calc = bounding_box.OrderlyOverlappingCalculator(
        BoundingBox((0, 0, 0), (9, 9, 9)), (3, 3, 3), (0, 0, 0))
    assert calc.offset_to_index(0, (1, 0, 0)) == 1
    assert calc.offset_to_index(0, (0, 1, 0)) == 3
    assert calc.offset_to_index(0, (-1, 0, 0)) is None
    start_faces, end_faces = calc.tag_border_locations(0)
    assert list(start_faces) == [True, True, True] and list(end_faces) == [False] * 3

  def test_overlap_must_be_smaller(self):
    with pytest.raises(ValueError, match='greater than overlap'):
      bounding_box.OrderlyOverlappingCalculator(BoundingBox((0, 0, 0), (5, 5, 5)), (2, 2, 2),
                                                (2, 0, 0))


def test_vector_proto_fields():
  v = vector_pb2.Vector3j(x=1, y=2, z=3)
  assert vector_pb2.Vector3j.FromString(v.SerializeToString()) == v
