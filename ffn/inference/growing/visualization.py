"""Pictures of the inference state: ortho planes of the object map, for notebooks."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

from ffn.utils import ortho_plane_visualization
from ffn.utils import probability


def gnuplot_rgb1(values: np.ndarray) -> np.ndarray:
  """gnuplot's default palette (sqrt, cube, sine) for values in [0, 1], as uint8 RGB."""
  values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
  rgb = np.stack([np.sqrt(values), values ** 3, np.sin(values * np.pi)], axis=-1)
  return (rgb * 250.0).astype(np.uint8)


def _upsampled_scores(scores: np.ndarray, deltas: Sequence[int], shape) -> np.ndarray:
  """A grid of scores repeated by `deltas` and centre-cropped to `shape`."""
  up = scores
  for axis, factor in enumerate(deltas):
    up = np.repeat(up, max(int(factor), 1), axis=axis)
  cut = (np.asarray(up.shape) - np.asarray(shape)) // 2
  cut = np.maximum(cut, 0)
  return up[tuple(slice(c, c + s) for c, s in zip(cut, shape))]


def visualize_state(seed_logits: np.ndarray, pos: Sequence[int], movement_policy=None
                    ) -> np.ndarray:
  """RGB uint8 picture of the object map's ortho planes through `pos` (zyx).

  Probabilities use the gnuplot palette, the FOV centre is marked red in the yx
  panel; a policy keeping its scores on a grid gets a second, score panel.
  """
  pos = tuple(int(p) for p in pos)
  planes = ortho_plane_visualization.cut_ortho_planes(seed_logits, center=pos,
                                                      cross_hair=True)
  picture = ortho_plane_visualization.concat_ortho_planes(planes)
  scores = getattr(movement_policy, 'scored_coords', None)
  if isinstance(scores, np.ndarray) and scores.ndim == 3:
    grid = _upsampled_scores(scores, movement_policy.deltas, seed_logits.shape)
    if grid.shape == seed_logits.shape:
      grid_planes = ortho_plane_visualization.cut_ortho_planes(grid, center=pos,
                                                               cross_hair=True)
      picture = np.concatenate(
          [picture, ortho_plane_visualization.concat_ortho_planes(grid_planes) * 4],
          axis=1)
  rgb = gnuplot_rgb1(probability.expit(picture))
  y, x = pos[1], pos[2]
  rgb[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] = (255, 0, 0)
  return rgb


class DynamicImage:
  """Shows successive pictures in place in a Jupyter notebook."""

  def UpdateFromPIL(self, new_img) -> None:  # pylint: disable=invalid-name
    """Replaces the displayed picture with a PIL image."""
    from IPython import display  # pylint: disable=g-import-not-at-top
    display.clear_output(wait=True)
    buf = io.BytesIO()
    new_img.save(buf, format='png')
    display.display(display.Image(buf.getvalue()))


def show(target, rgb: np.ndarray) -> None:
  """Hands a picture to a callable or to an object with `UpdateFromPIL`."""
  if hasattr(target, 'UpdateFromPIL'):
    from PIL import Image  # pylint: disable=g-import-not-at-top
    target.UpdateFromPIL(Image.fromarray(rgb))
  else:
    target(rgb)
