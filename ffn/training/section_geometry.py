"""Geometric EM-section augmentations (elastic warp, misalignment): image and labels move together.

Arrays are [z, y, x, c]; z is the sectioning axis. The labels (and anything
else sampled with them, e.g. loss weights stacked on the channel axis) may be
smaller than the image in z, y and x and share its centre. Labels are moved by
nearest-neighbour sampling, so their values stay the ones they were. Both
augmentations keep the centre voxel where it is: the training seed starts
there, and a seed on another object's voxel would teach the network nonsense.
Each function is pure given its tensors and a stateless `seed` ([2] int).
"""

from __future__ import annotations

import tensorflow as tf


def _static_shape(x: tf.Tensor, what: str) -> list[int]:
  """The static [z, y, x, c] shape of `x`; these functions index with it."""
  shape = x.shape.as_list()
  assert len(shape) == 4 and None not in shape, f'{what} needs a static [z, y, x, c] shape'
  return shape


def _centre_offsets(big: list[int], small: list[int]) -> list[int]:
  """Index in `big` of `small`'s first voxel when both share their centre voxel."""
  assert all(s <= b for b, s in zip(big[:3], small[:3])), f'{small} does not fit in {big}'
  return [b // 2 - s // 2 for b, s in zip(big[:3], small[:3])]


def displacement_field(shape_yx: tuple[int, int], stdev: float, control_points_ratio: float,
                       seed: tf.Tensor) -> tf.Tensor:
  """A smooth random [y, x, 2] displacement (pixels), zero at the centre pixel.

  Control points on a grid of `control_points_ratio` times the patch size (at
  least 2 a side) move by normal draws of `stdev` pixels; bicubic
  interpolation spreads that over every pixel.
  """
  ny, nx = (max(int(round(control_points_ratio * s)), 2) for s in shape_yx)
  control = tf.random.stateless_normal([1, ny, nx, 2], seed, stddev=stdev)
  field = tf.image.resize(control, list(shape_yx), method='bicubic')[0]
  return field - field[shape_yx[0] // 2, shape_yx[1] // 2]


def _gather_yx(x: tf.Tensor, iy: tf.Tensor, ix: tf.Tensor) -> tf.Tensor:
  """x [z, y, x, c] at integer yx positions [y', x'] -> [z, y', x', c]."""
  picked = tf.gather_nd(tf.transpose(x, [1, 2, 0, 3]), tf.stack([iy, ix], axis=-1))
  return tf.transpose(picked, [2, 0, 1, 3])


def sample_yx(x: tf.Tensor, coords: tf.Tensor, nearest: bool) -> tf.Tensor:
  """Every section of x [z, y, x, c] read at yx `coords` [y', x', 2] (edges repeated).

  Bilinear, or nearest-neighbour with `nearest` (which keeps values discrete).
  """
  _, size_y, size_x, _ = _static_shape(x, 'sample_yx')
  cy = tf.clip_by_value(coords[..., 0], 0.0, size_y - 1.0)
  cx = tf.clip_by_value(coords[..., 1], 0.0, size_x - 1.0)
  if nearest:
    return _gather_yx(x, tf.cast(tf.round(cy), tf.int32), tf.cast(tf.round(cx), tf.int32))
  y0, x0 = tf.floor(cy), tf.floor(cx)
  wy, wx = (cy - y0)[None, :, :, None], (cx - x0)[None, :, :, None]
  y0, x0 = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)
  y1, x1 = tf.minimum(y0 + 1, size_y - 1), tf.minimum(x0 + 1, size_x - 1)
  x = tf.cast(x, tf.float32)
  top = _gather_yx(x, y0, x0) * (1 - wx) + _gather_yx(x, y0, x1) * wx
  bottom = _gather_yx(x, y1, x0) * (1 - wx) + _gather_yx(x, y1, x1) * wx
  return top * (1 - wy) + bottom * wy


def elastic_warp(image: tf.Tensor, labels: tf.Tensor, stdev_ratio: float,
                 control_points_ratio: float, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Warps every section of image and labels in yx by one smooth random field.

  The control points move by a normal stdev of `stdev_ratio` times the smaller
  of the image's y and x sizes (upstream HEAD's `deformation_stdev_ratio`).
  The image is sampled bilinearly, the labels by nearest neighbour.
  """
  image_shape = _static_shape(image, 'elastic_warp image')
  label_shape = _static_shape(labels, 'elastic_warp labels')
  size_yx = (image_shape[1], image_shape[2])
  field = displacement_field(size_yx, stdev_ratio * min(size_yx), control_points_ratio, seed)
  grid = tf.cast(tf.stack(tf.meshgrid(tf.range(size_yx[0]), tf.range(size_yx[1]),
                                      indexing='ij'), axis=-1), tf.float32)
  warped_image = tf.cast(sample_yx(image, grid + field, nearest=False), image.dtype)
  _, oy, ox = _centre_offsets(image_shape, label_shape)
  ly, lx = label_shape[1], label_shape[2]
  # The labels' own pixel grid, displaced as the image pixels they lie on.
  label_coords = grid[:ly, :lx] + field[oy:oy + ly, ox:ox + lx]
  return warped_image, sample_yx(labels, label_coords, nearest=True)


def misalignment_sections(depth: int, slip_ratio: float, seed: tf.Tensor) -> tf.Tensor:
  """A [depth] bool mask of the sections to shift; never the centre section.

  With probability `slip_ratio` one section slips alone; otherwise all
  sections beyond a random plane between two sections, on the side away from
  the centre, are translated together (upstream HEAD's slip / translate).
  """
  assert depth >= 2, 'misalignment needs at least 2 sections'
  centre = depth // 2
  slip_seed, section_seed, plane_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 3))
  z = tf.range(depth)
  section = tf.random.stateless_uniform([], section_seed, 0, depth - 1, tf.int32)
  section += tf.cast(section >= centre, tf.int32)  # Any section but the centre.
  # The plane lies before section `plane`; the side without the centre moves.
  plane = tf.random.stateless_uniform([], plane_seed, 1, depth, tf.int32)
  translated = tf.where(plane > centre, z >= plane, z < plane)
  slip = tf.random.stateless_uniform([], slip_seed) < slip_ratio
  return tf.where(slip, tf.equal(z, section), translated)


def shift_sections(x: tf.Tensor, moved: tf.Tensor, dy: tf.Tensor, dx: tf.Tensor,
                   max_shift: int) -> tf.Tensor:
  """x [z, y, x, c] with the `moved` sections' content moved by (dy, dx) (|d| <= max_shift).

  What moves in from outside the patch is the patch mirrored at its edge.
  """
  _, size_y, size_x, _ = _static_shape(x, 'shift_sections')
  padded = tf.pad(x, [[0, 0], [max_shift, max_shift], [max_shift, max_shift], [0, 0]],
                  mode='SYMMETRIC')
  shifted = tf.slice(padded, tf.stack([0, max_shift - dy, max_shift - dx, 0]),
                     tf.shape(x))
  return tf.where(moved[:, None, None, None], shifted, x)


def misalignment(image: tf.Tensor, labels: tf.Tensor, max_shift: int, slip_ratio: float,
                 seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Shifts some sections of image and labels alike by one random yx offset in +-max_shift.

  Which sections: `misalignment_sections` over the image's depth; the labels'
  sections are the image's sections they lie on.
  """
  image_shape = _static_shape(image, 'misalignment image')
  label_shape = _static_shape(labels, 'misalignment labels')
  sections_seed, offset_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  moved = misalignment_sections(image_shape[0], slip_ratio, sections_seed)
  dy, dx = tf.unstack(tf.random.stateless_uniform([2], offset_seed, -max_shift, max_shift + 1,
                                                  tf.int32))
  oz = _centre_offsets(image_shape, label_shape)[0]
  return (shift_sections(image, moved, dy, dx, max_shift),
          shift_sections(labels, moved[oz:oz + label_shape[0]], dy, dx, max_shift))
