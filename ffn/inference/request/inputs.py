"""The volumes a request reads, opened once and checked: image, initial segmentation, masks.

`RequestInputs` opens them from a plan, checks a box against them
(`check_box`: inside the image, at least one FOV, covered by every mask
volume, an initial segmentation of the image's shape), and reads a box: the
image (checked finite) and its movement restrictor. Boxes are zyx here.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ffn.inference.inference_utils import Counters
from ffn.inference.inference_utils import timer_counter
from ffn.inference.io import masks
from ffn.inference.io import volumes
from ffn.inference.policies import movement
from ffn.inference.request import histogram
from ffn.inference.request import plan as plan_lib
from ffn.utils import axes
from ffn.utils import bounding_box
from ffn.utils import channels
from ffn.utils import errors
from ffn.utils.axes import ZYX

# What `restrictor` returns for a box whose every voxel is masked.
ALL_MASKED = 'all-masked'


class RequestInputs:
  """The opened volumes of a plan (see module doc)."""

  def __init__(self, plan: plan_lib.InferencePlan, counters: Counters):
    self.plan = plan
    self.counters = counters
    self.reference_lut = (histogram.load_reference_lut(plan.reference_histogram)
                          if plan.reference_histogram else None)
    with timer_counter(counters, 'volstore-open'):
      image = volumes.decorated_volume(plan.image)
      try:
        self._image = channels.channels_first(image, 'InferenceRequest.image')
        self._undecided = None
      except channels.ChannelAxisError:
        # The first box decides (see check_box); until then, its spatial shape is unknown.
        self._image, self._undecided = image, image
      self.init_segmentation = (volumes.decorated_volume(plan.init_segmentation)
                                if plan.init_segmentation is not None else None)
      self._shift_mask = (volumes.decorated_volume(plan.shift_mask)
                          if plan.shift_mask is not None else None)
      self.mask_volumes: dict = {}

  @property
  def image_volume(self):
    """The image as a [c]zyx volume."""
    return self._image

  @property
  def image_shape_zyx(self) -> tuple[int, ...]:
    return tuple(int(n) for n in self._image.shape[-3:])

  # -- checks -------------------------------------------------------------------

  def check_box(self, corner: ZYX, size: ZYX, fov_xyz: Optional[Sequence[int]] = None) -> None:
    """Raises FFNError unless the zyx box lies inside the image and holds a `fov_xyz` FOV.

    The first box also decides the channel axis of a 4-D image whose shape
    leaves it open.
    """
    corner, size = axes.zyx_triple(corner), axes.zyx_triple(size)
    start_xyz, size_xyz = axes.xyz(corner), axes.xyz(size)
    if min(size) <= 0:
      raise errors.FFNError(f'bounding box size (xyz) {size_xyz} must be positive on every axis')
    if self._undecided is not None:
      end = [c + n for c, n in zip(corner, size)]
      self._image = channels.channels_first(self._undecided, 'InferenceRequest.image', end)
      self._undecided = None
    shape = self.image_shape_zyx
    if min(corner) < 0 or any(c + n > s for c, n, s in zip(corner, size, shape)):
      end_xyz = tuple(c + n for c, n in zip(start_xyz, size_xyz))
      raise errors.FFNError(
          f'bounding box start {start_xyz} size {size_xyz} (xyz, ending at {end_xyz}) reaches '
          f'beyond the image volume of size {axes.xyz(shape)} (xyz); give a box inside it')
    self._check_init_segmentation(shape)
    self._check_mask_volumes(corner, size)
    if fov_xyz is not None and any(n < f for n, f in zip(size_xyz, fov_xyz)):
      raise errors.FFNError(
          f'bounding box size {size_xyz} (xyz) is smaller than the model\'s field of view '
          f'{tuple(int(f) for f in fov_xyz)} (xyz), so no FOV fits in it; give a box at least '
          'that large')

  def _mask_volume(self, config):
    key = config.volume.mask.SerializeToString()
    if key not in self.mask_volumes:
      self.mask_volumes[key] = volumes.decorated_volume(config.volume.mask)
    return self.mask_volumes[key]

  def _check_mask_volumes(self, corner: ZYX, size: ZYX) -> None:
    """Raises FFNError unless every volume mask of the request covers the zyx box."""
    end = [c + n for c, n in zip(corner, size)]
    for field in ('masks', 'seed_masks', 'histogram_masks'):
      for i, config in enumerate(getattr(self.plan, field)):
        if config.WhichOneof('source') != 'volume':
          continue
        shape = tuple(int(n) for n in self._mask_volume(config).shape[-3:])
        if any(e > n for e, n in zip(end, shape)):
          raise errors.FFNError(
              f'InferenceRequest.{field}[{i}].volume.mask has shape {axes.xyz(shape)} (xyz), '
              f'but the box reaches {axes.xyz(end)} (xyz); a mask volume must cover the box')

  def _check_init_segmentation(self, image_shape: ZYX) -> None:
    """Raises FFNError unless init_segmentation holds integer ids over the image's shape."""
    volume = self.init_segmentation
    if volume is None:
      return
    shape = tuple(int(s) for s in volume.shape[-3:])
    if len(volume.shape) not in (3, 4) or shape != tuple(image_shape):
      raise errors.FFNError(
          f'InferenceRequest.init_segmentation has shape {tuple(volume.shape)[::-1]} (xyz'
          f'{"c" if len(volume.shape) == 4 else ""}) but the image is {axes.xyz(image_shape)} '
          '(xyz); it must cover the image voxel for voxel')
    if np.dtype(volume.dtype).kind not in 'iu':
      raise errors.FFNError(f'InferenceRequest.init_segmentation is {np.dtype(volume.dtype)}; '
                            'expected integer segment ids')

  # -- reading a box --------------------------------------------------------------

  def read_image(self, corner: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The zyx image of a box inside the volume (channel 0 of 4-D volumes), checked finite."""
    box = bounding_box.BoundingBox.from_zyx(corner, size).to_slice()
    if len(self._image.shape) == 4:
      box = (0,) + tuple(box)
    image = np.asarray(self._image[tuple(box)])
    if image.dtype.kind not in 'iuf':
      raise errors.FFNError(f'InferenceRequest.image is {image.dtype}; expected integer or '
                            'floating-point intensities')
    if image.dtype.kind == 'f':
      bad = ~np.isfinite(image)
      if bad.any():
        first = np.add(np.argwhere(bad)[0], corner)
        raise errors.FFNError(
            f'InferenceRequest.image holds {int(bad.sum())} NaN or infinite voxels in the box '
            f'start {axes.xyz(corner)} size {axes.xyz(size)} (xyz), the first at '
            f'{axes.xyz(first)} (xyz); every intensity must be a finite number')
    return image

  def restrictor(self, corner: ZYX, size: ZYX, image: np.ndarray, alignment,
                 fov_xyz: Sequence[int]):
    """The MovementRestrictor of the request's masks; None if none; ALL_MASKED."""
    kwargs = {}
    if self.plan.masks:
      with timer_counter(self.counters, 'load-mask'):
        mask = masks.build_mask(self.plan.masks, corner, size, self.mask_volumes, image,
                                alignment)
      if np.all(mask):
        return ALL_MASKED
      kwargs['mask'] = mask
    if self.plan.seed_masks:
      with timer_counter(self.counters, 'load-seed-mask'):
        seed_mask = masks.build_mask(self.plan.seed_masks, corner, size, self.mask_volumes,
                                     image, alignment)
      if np.all(seed_mask):
        return ALL_MASKED
      kwargs['seed_mask'] = seed_mask
    if self._shift_mask is not None:
      with timer_counter(self.counters, 'load-shift-mask'):
        kwargs.update(self._shift_mask_kwargs(corner, size, alignment, fov_xyz))
    return movement.MovementRestrictor(**kwargs) if kwargs else None

  def _shift_mask_kwargs(self, corner: ZYX, size: ZYX, alignment, fov_xyz) -> dict:
    """Restrictor arguments for the shift mask (read at its xy downsampling)."""
    s = self.plan.shift_mask_scale
    scale = np.array([1, s, s])
    shift_corner = np.asarray(corner) // scale
    shift_size = -(-np.asarray(size) // scale)
    shift_alignment = alignment.rescaled(1.0 / scale)
    src_corner, src_size = shift_alignment.expand_bounds(shift_corner, shift_size,
                                                         forward=False)
    src_corner, src_size = volumes.clip_subvolume_to_bounds(src_corner, src_size,
                                                            self._shift_mask)
    src_end = src_corner + src_size
    raw = np.asarray(self._shift_mask[
        0:2, src_corner[0]:src_end[0], src_corner[1]:src_end[1], src_corner[2]:src_end[2]])
    shift_mask = np.array([
        shift_alignment.align_and_crop(src_corner, raw[i], shift_corner, shift_size)
        for i in range(2)])
    shift_mask = alignment.transform_shift_mask(corner, s, shift_mask)
    fov = self.plan.shift_mask_fov
    if fov is None:
      diameter = np.asarray(fov_xyz)
      fov = bounding_box.BoundingBox(start=-(diameter // 2), size=diameter)
    return dict(shift_mask=shift_mask, shift_mask_fov=fov, shift_mask_scale=s,
                shift_mask_threshold=self.plan.shift_mask_threshold)

  def match_histogram(self, image: np.ndarray, corner: ZYX, size: ZYX, alignment) -> bool:
    """Matches `image` (in place) to the reference histogram, outside histogram_masks."""
    mask = None
    if self.plan.histogram_masks:
      mask = masks.build_mask(self.plan.histogram_masks, corner, size, self.mask_volumes,
                              image, alignment)
    return histogram.match_or_skip(image, self.reference_lut, mask, corner)
