"""Elastic warp and misalignment: image and labels move together, labels stay discrete."""

import numpy as np
import pytest
import tensorflow as tf

from ffn.training import section_geometry


def _seed(i):
  return tf.constant([i, 7], tf.int32)


def _ramp_x(shape_zyx):
  """A [z, y, x, 1] float image whose value is its x index."""
  return np.broadcast_to(np.arange(shape_zyx[2], dtype=np.float32)[None, None, :, None],
                         tuple(shape_zyx) + (1,)).copy()


def test_elastic_warp_moves_labels_with_image_and_keeps_them_discrete():
  shape = (3, 21, 27)  # zyx, non-cubic.
  rng = np.random.default_rng(0)
  labels = rng.integers(1, 6, size=shape + (1,)).astype(np.int64)
  image = _ramp_x(shape)
  moved = 0
  for i in range(5):
    warped_image, warped_labels = section_geometry.elastic_warp(
        tf.constant(image), tf.constant(labels), 0.1, 0.2, _seed(i))
    warped_image, warped_labels = warped_image.numpy(), warped_labels.numpy()
    assert warped_image.shape == image.shape and warped_labels.shape == labels.shape
    assert warped_labels.dtype == labels.dtype
    assert set(np.unique(warped_labels)) <= set(np.unique(labels))
    # The centre voxel stays where it is: the training seed starts there.
    assert warped_labels[1, 10, 13, 0] == labels[1, 10, 13, 0]
    assert warped_image[1, 10, 13, 0] == pytest.approx(13.0, abs=1e-4)
    # Every section gets the same yx warp.
    np.testing.assert_array_equal(warped_image[0], warped_image[2])
    moved += np.mean(np.abs(warped_image - image) > 0.5)
  assert moved > 0.1  # It does warp.


def test_elastic_warp_label_positions_follow_the_image():
  # Labels = the x index, image = the x index as a float: the label read at each voxel
  # is the nearest whole x of where the image was read from.
  shape = (2, 19, 25)
  image = _ramp_x(shape)
  labels = image.astype(np.int32)
  warped_image, warped_labels = section_geometry.elastic_warp(
      tf.constant(image), tf.constant(labels), 0.1, 0.2, _seed(3))
  assert np.abs(warped_image.numpy() - warped_labels.numpy()).max() <= 0.5 + 1e-4
  assert np.abs(warped_image.numpy() - image).max() > 1


def test_elastic_warp_of_smaller_labels_matches_the_centre_of_the_image():
  shape, label_shape = (3, 21, 25), (1, 11, 15)  # Labels centred in the image.
  image = _ramp_x(shape)
  labels = image[1:2, 5:16, 5:20].astype(np.int32)
  warped_image, warped_labels = section_geometry.elastic_warp(
      tf.constant(image), tf.constant(labels), 0.05, 0.2, _seed(1))
  assert warped_labels.shape == label_shape + (1,)
  centre_of_image = warped_image.numpy()[1:2, 5:16, 5:20]
  # Away from the labels' edges (beyond which they repeat their edge values).
  difference = np.abs(centre_of_image - warped_labels.numpy())[:, 3:-3, 3:-3]
  assert difference.max() <= 0.5 + 1e-4
  assert np.abs(centre_of_image - image[1:2, 5:16, 5:20]).max() > 0.5


def test_shift_sections_moves_only_the_chosen_sections():
  x = np.arange(4 * 6 * 7, dtype=np.float32).reshape(4, 6, 7, 1)
  moved = tf.constant([False, False, True, True])
  out = section_geometry.shift_sections(tf.constant(x), moved, tf.constant(2),
                                        tf.constant(-1), 3).numpy()
  np.testing.assert_array_equal(out[:2], x[:2])
  # Content moves +2 in y and -1 in x; the interior is the original, shifted.
  np.testing.assert_array_equal(out[2:, 2:, :-1], x[2:, :-2, 1:])


@pytest.mark.parametrize('slip_ratio', [0.0, 1.0])
def test_misalignment_sections_never_include_the_centre(slip_ratio):
  depth, centre = 7, 3
  seen = set()
  for i in range(40):
    moved = section_geometry.misalignment_sections(depth, slip_ratio, _seed(i)).numpy()
    assert moved.any() and not moved[centre]
    z = np.flatnonzero(moved)
    if slip_ratio == 1.0:
      assert len(z) == 1
    else:  # All sections beyond a plane, on the far side from the centre.
      assert z.max() == depth - 1 or z.min() == 0
      assert np.all(np.diff(z) == 1)
    seen.add(tuple(z))
  assert len(seen) > 3


def test_misalignment_shifts_image_and_labels_alike_above_a_plane():
  shape = (6, 15, 17)  # zyx
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 50, size=shape + (1,)).astype(np.int64)
  image = labels.astype(np.float32) * 2
  shifted_somewhere = 0
  for i in range(20):
    out_image, out_labels = section_geometry.misalignment(
        tf.constant(image), tf.constant(labels), 3, 0.0, _seed(i))
    out_image, out_labels = out_image.numpy(), out_labels.numpy()
    np.testing.assert_array_equal(out_image, out_labels * 2)  # Moved alike.
    changed = [not np.array_equal(out_labels[z], labels[z]) for z in range(shape[0])]
    assert not changed[shape[0] // 2]
    if any(changed):
      shifted_somewhere += 1
      z = np.flatnonzero(changed)
      assert z.max() == shape[0] - 1 or z.min() == 0  # One side of a plane.
      # The moved sections moved by one common offset within +-3.
      found = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
               if all(np.array_equal(out_labels[k, 3 + dy:12 + dy, 3 + dx:14 + dx],
                                     labels[k, 3:12, 3:14]) for k in z)]
      assert found
  assert shifted_somewhere >= 15  # Only a (0, 0) draw leaves all sections in place.


def test_misalignment_of_smaller_labels_uses_the_sections_they_lie_on():
  image = _ramp_x((5, 11, 13)) + np.arange(5, dtype=np.float32)[:, None, None, None] * 100
  labels = image[1:4, 2:9, 2:11].astype(np.int32)
  for i in range(10):
    out_image, out_labels = section_geometry.misalignment(
        tf.constant(image), tf.constant(labels), 2, 0.5, _seed(i))
    for k in range(3):  # Label section k lies on image section k + 1.
      moved_image = not np.array_equal(out_image.numpy()[k + 1], image[k + 1])
      moved_labels = not np.array_equal(out_labels.numpy()[k], labels[k])
      assert moved_image == moved_labels
