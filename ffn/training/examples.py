"""In-training FOV movement: seed canvases per example, move policies, batch assembly."""

from __future__ import annotations

import collections
import dataclasses
from typing import Callable, Iterator, Sequence

import numpy as np

from ffn.training.model import make_shifts
from ffn.training.model import ModelInfo
from ffn.utils import axes
from ffn.utils import errors
from ffn.utils import fov
from ffn.utils import probability

FOV_POLICIES = ('fixed', 'max_pred_moves', 'max_pred_offsets', 'fixed_offsets_window',
                'no_offsets')
# Upstream HEAD's own names for the same policies (ffn/jax/train.py). Its
# 'max_pred_moves' runs the checked max_pred_offsets, but here that name keeps
# upstream 2019's meaning.
FOV_POLICY_ALIASES = {'fixed_window': 'fixed_offsets_window', 'no_step': 'no_offsets'}
# Policies that load one move more than they evaluate.
_EXTRA_MOVE_POLICIES = ('max_pred_moves', 'max_pred_offsets')
# Upstream HEAD's fixed_window radius (ffn/jax/train.py).
DEFAULT_WINDOW_RADIUS = 8
# The seed's value at the centre of a new example's canvas (as in inference).
INIT_ACTIVATION = 0.95
# Examples in a row from which a policy may yield no FOV before training stops:
# with a valid threshold every example yields its origin.
MAX_EMPTY_EXAMPLES = 1000

Offset = tuple[int, int, int]  # xyz


@dataclasses.dataclass(frozen=True)
class TrainingSizes:
  """xyz sizes of what one training example loads and evaluates."""
  image: tuple[int, int, int]
  label: tuple[int, int, int]
  canvas: tuple[int, int, int]
  eval: tuple[int, int, int]


def resolve_fov_policy(name: str) -> str:
  """The policy `name` stands for (upstream HEAD's spellings accepted); FFNError if none."""
  policy = FOV_POLICY_ALIASES.get(name, name)
  if policy not in FOV_POLICIES:
    raise errors.FFNError(f'fov_policy {name!r} is not one of {FOV_POLICIES} (or upstream '
                          f"HEAD's {sorted(FOV_POLICY_ALIASES)})")
  return policy


def training_sizes(info: ModelInfo, fov_policy: str, fov_moves: int) -> TrainingSizes:
  """Patch sizes around a coordinate; the max_pred policies load one extra move (not evaluated)."""
  if fov_policy not in FOV_POLICIES:
    raise errors.FFNError(f'fov_policy {fov_policy!r} is not one of {FOV_POLICIES}')
  if fov_moves < 0:
    raise errors.FFNError(f'fov_moves must be >= 0, got {fov_moves}')
  moves = fov_moves + 1 if fov_policy in _EXTRA_MOVE_POLICIES else fov_moves
  grow = lambda size, n: tuple(int(s + 2 * d * n) for s, d in zip(size, info.deltas))
  return TrainingSizes(image=grow(info.input_image_size, moves),
                       label=grow(info.pred_mask_size, moves),
                       canvas=grow(info.input_seed_size, moves),
                       eval=grow(info.pred_mask_size, fov_moves))


def make_seed_canvas(shape_zyx: Sequence[int], seed_pad: float,
                     init_activation: float = INIT_ACTIVATION) -> np.ndarray:
  """A [z, y, x, 1] logit canvas: logit(seed_pad) everywhere, logit(0.95) at the centre."""
  canvas = np.full(list(shape_zyx) + [1], probability.logit_float32(seed_pad), np.float32)
  canvas[tuple(s // 2 for s in shape_zyx)] = probability.logit_float32(init_activation)
  return canvas


def crop_slices(shape_zyx: Sequence[int], offset_xyz: Sequence[int],
                size_xyz: Sequence[int]) -> tuple[slice, ...]:
  """Index of the `size_xyz` crop centred `offset_xyz` away from the array's centre."""
  out = []
  for s, o, c in zip(shape_zyx, axes.xyz_to_zyx(offset_xyz), axes.xyz_to_zyx(size_xyz)):
    start = s // 2 - c // 2 + o
    if start < 0 or start + c > s:
      raise ValueError(f'crop of {list(size_xyz)} at offset {list(offset_xyz)} (xyz) leaves '
                       f'an array of shape {list(shape_zyx)} (zyx)')
    out.append(slice(start, start + c))
  return tuple(out)


MoveRecorder = Callable[[bool, bool, Offset], None]  # (wanted, executed, offset xyz)


def _no_record(wanted: bool, executed: bool, offset: Offset) -> None:
  del wanted, executed, offset


def _centre_value(array: np.ndarray, offset_xyz: Sequence[int]) -> float:
  """The value `offset_xyz` away from the centre of a [z, y, x, 1] array."""
  return array[tuple(np.array(array.shape[:3]) // 2 + np.array(axes.xyz_to_zyx(offset_xyz)))][0]


def _wanted(labels: np.ndarray | None, offset_xyz: Sequence[int], threshold: float) -> bool:
  """Whether the labels hold the object at the move target (no labels: unknown, False)."""
  return labels is not None and bool(_centre_value(labels, offset_xyz) >= threshold)


def fixed_offsets(canvas: np.ndarray, shifts: Sequence[Offset],
                  threshold_logit: float, labels: np.ndarray | None = None,
                  record_move: MoveRecorder = _no_record, **_) -> Iterator[Offset]:
  """The origin, then each shift whose target voxel in the current canvas reaches threshold.

  Every candidate move is recorded: wanted when the labels reach the threshold
  probability at its target, executed when the canvas does.
  """
  threshold = float(probability.expit(threshold_logit))
  for off in [(0, 0, 0)] + list(shifts):
    executed = bool(_centre_value(canvas, off) >= threshold_logit)
    record_move(_wanted(labels, off, threshold), executed, off)
    if executed:
      yield tuple(int(v) for v in off)


def max_pred_offsets(canvas: np.ndarray, info: ModelInfo, sizes: TrainingSizes,
                     threshold_logit: float, labels: np.ndarray | None = None,
                     record_move: MoveRecorder = _no_record, check_moves: bool = False,
                     **_) -> Iterator[Offset]:
  """Breadth-first moves to face maxima of each prediction, within the loaded image.

  Each visited FOV is recorded as a move of radius 0 (as upstream does for this
  policy): wanted when the labels reach the threshold probability at its
  centre, executed when the canvas does. Without `check_moves` this is
  upstream 2019's max_pred_moves. With it, upstream HEAD's max_pred_offsets:
  offsets are quantised to the nearest multiple of deltas, and a move is taken
  only where the canvas reaches the threshold and (but for the origin) the
  labels hold the object; a move refused may come again by another path.
  """
  if check_moves:
    yield from _checked_max_pred_offsets(canvas, info, sizes, threshold_logit, labels,
                                         record_move)
    return
  threshold = float(probability.expit(threshold_logit))
  queue = collections.deque([(0, 0, 0)])
  done = set()
  deltas = np.array(info.deltas)
  train_radius = np.array(sizes.image) // 2
  input_radius = np.array(info.input_image_size) // 2
  while queue:
    off = queue.popleft()
    if np.any(np.abs(off) + input_radius > train_radius):
      continue
    quantized = tuple((np.array(off) // np.maximum(deltas, 1)).tolist())
    if quantized in done:
      continue
    done.add(quantized)
    record_move(_wanted(labels, off, threshold),
                bool(_centre_value(canvas, off) >= threshold_logit), (0, 0, 0))
    yield off
    # The caller has written this step's prediction into the canvas by now.
    queue.extend(_face_moves(canvas, info, off, threshold_logit))


def _face_moves(canvas: np.ndarray, info: ModelInfo, off: Offset,
                threshold_logit: float) -> list[Offset]:
  """Moves (xyz, from the centre) to the face maxima of the prediction at `off`, best first."""
  prediction = canvas[crop_slices(canvas.shape[:3], off, info.pred_mask_size)][..., 0]
  moves = sorted(fov.get_scored_move_offsets(
      axes.xyz_to_zyx(info.deltas), prediction, threshold=threshold_logit), reverse=True)
  return [tuple(int(v) for v in np.array(rel[::-1]) + off) for _, rel in moves]


def _checked_max_pred_offsets(canvas: np.ndarray, info: ModelInfo, sizes: TrainingSizes,
                              threshold_logit: float, labels: np.ndarray | None,
                              record_move: MoveRecorder) -> Iterator[Offset]:
  """Upstream HEAD's max_pred_offsets (see max_pred_offsets)."""
  threshold = float(probability.expit(threshold_logit))
  queue = collections.deque([(0, 0, 0)])
  done = set()
  deltas = np.array(info.deltas)
  max_radius = np.array(sizes.image) // 2 - np.array(info.input_image_size) // 2
  while queue:
    off = queue.popleft()
    if np.any(np.abs(off) > max_radius):
      continue
    quantized = tuple(((np.array(off) + deltas / 2) // np.maximum(deltas, 1)).astype(int).tolist())
    if quantized in done:
      continue
    valid = bool(_centre_value(canvas, off) >= threshold_logit)
    wanted = _wanted(labels, off, threshold)
    record_move(wanted, valid, (0, 0, 0))
    if not valid or (not wanted and quantized != (0, 0, 0)):
      continue
    done.add(quantized)
    yield off
    # The caller has written this step's prediction into the canvas by now.
    queue.extend(_face_moves(canvas, info, off, threshold_logit))


def _shell_window(canvas_zyx: Sequence[int], deltas_xyz: Sequence[int], offset_xyz: Offset,
                  radius: int) -> np.ndarray:
  """[n, 3] zyx indices (canvas centred) of the +-deltas shell within `radius` of the target.

  The shell holds the voxels at exactly deltas from the centre along some axis
  and within deltas along the others (upstream HEAD's 'halo'). Unlike
  upstream, the window is clipped to the canvas rather than wrapping round it.
  """
  centre = np.array(canvas_zyx) // 2
  deltas = np.array(axes.xyz_to_zyx(deltas_xyz))
  target = centre + np.array(axes.xyz_to_zyx(offset_xyz))
  lo = np.maximum(target - radius, 0)
  hi = np.minimum(target + radius + 1, canvas_zyx)
  if np.any(hi <= lo):
    return np.zeros((0, 3), int)
  grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing='ij'), -1)
  rel = np.abs(grid.reshape(-1, 3) - centre)
  on_shell = np.all(rel <= deltas, axis=1) & np.any(rel == deltas, axis=1)
  return grid.reshape(-1, 3)[on_shell]


def fixed_offsets_window(canvas: np.ndarray, shifts: Sequence[Offset], threshold_logit: float,
                         deltas: Sequence[int], radius: int = DEFAULT_WINDOW_RADIUS,
                         labels: np.ndarray | None = None,
                         record_move: MoveRecorder = _no_record, **_) -> Iterator[Offset]:
  """Upstream HEAD's fixed_offsets_window: fixed_offsets, but any voxel near a target may do.

  The voxels looked at are those of the +-deltas shell within `radius` of the
  target (in every axis), so thin processes that miss the exact target voxel
  are still followed. Wanted when the labels reach the threshold probability
  at any of those voxels.
  """
  threshold = float(probability.expit(threshold_logit))
  origin = (0, 0, 0)
  executed = bool(_centre_value(canvas, origin) >= threshold_logit)
  record_move(_wanted(labels, origin, threshold), executed, origin)
  if executed:
    yield origin
  canvas_zyx = canvas.shape[:3]
  for off in shifts:
    window = _shell_window(canvas_zyx, deltas, off, radius)
    executed = bool(np.any(canvas[tuple(window.T)] >= threshold_logit))
    wanted = False
    if labels is not None:
      # The same voxels in the labels' frame, where the labels reach.
      shifted = window + np.array(labels.shape[:3]) // 2 - np.array(canvas_zyx) // 2
      inside = np.all((shifted >= 0) & (shifted < labels.shape[:3]), axis=1)
      wanted = bool(np.any(labels[tuple(shifted[inside].T)] >= threshold))
    record_move(wanted, executed, tuple(off))
    if executed:
      yield tuple(int(v) for v in off)


def no_offsets(record_move: MoveRecorder = _no_record, **_) -> Iterator[Offset]:
  """Upstream HEAD's no_offsets: one FOV at the origin per example, recorded as wanted and taken."""
  record_move(True, True, (0, 0, 0))
  yield (0, 0, 0)


class ExampleSlot:
  """One batch row: a training example, its seed canvas, and where its FOV is now."""

  def __init__(self, next_example: Callable[[], dict], info: ModelInfo,
               sizes: TrainingSizes, policy: Callable[..., Iterator[Offset]],
               seed_pad: float, on_done: Callable[[dict, np.ndarray], None]):
    self._next_example = next_example
    self._info = info
    self._sizes = sizes
    self._policy = policy
    self._seed_pad = seed_pad
    self._on_done = on_done
    self._example = None
    self.canvas = None
    self._offsets = iter(())
    self._yielded = False
    self.offset = None

  def _start(self) -> None:
    self._example = self._next_example()
    self._yielded = False
    self.canvas = make_seed_canvas(axes.xyz_to_zyx(self._sizes.canvas), self._seed_pad)
    self._offsets = self._policy(self.canvas, self._example['labels'])

  def advance(self) -> None:
    """Moves to the next FOV, finishing examples (and loading new ones) as policies run out."""
    empty = 0
    while True:
      if self._example is not None:
        off = next(self._offsets, None)
        if off is not None:
          self.offset = off
          self._yielded = True
          return
        self._on_done(self._example, self.canvas)
        empty += not self._yielded
        if empty > MAX_EMPTY_EXAMPLES:
          raise errors.FFNError(f'{MAX_EMPTY_EXAMPLES} training examples in a row gave no field of '
                           'view to train on: no move reaches --threshold; lower it')
      self._start()

  def crops(self) -> tuple[np.ndarray, ...]:
    """(seed, image, labels, weights) crops around the current FOV."""
    info, shape = self._info, self.canvas.shape[:3]
    seed = self.canvas[crop_slices(shape, self.offset, info.input_seed_size)]
    image = self._example['image']
    image = image[crop_slices(image.shape[:3], self.offset, info.input_image_size)]
    label_index = crop_slices(self._example['labels'].shape[:3], self.offset,
                              info.pred_mask_size)
    return (seed, image, self._example['labels'][label_index],
            self._example['weights'][label_index])

  def write_prediction(self, logits: np.ndarray) -> None:
    """Replaces the canvas under the current FOV's prediction with `logits` [z, y, x, 1]."""
    index = crop_slices(self.canvas.shape[:3], self.offset, logits.shape[:3][::-1])
    self.canvas[index] = logits


class BatchFeeder:
  """`batch_size` independent examples moving their FOVs; predictions are fed back."""

  def __init__(self, next_example: Callable[[], dict], info: ModelInfo, batch_size: int,
               fov_policy: str = 'fixed', fov_moves: int = 1, threshold: float = 0.9,
               seed_pad: float = 0.05, shifts: Sequence[Offset] | None = None,
               on_example_done: Callable[[dict, np.ndarray], None] | None = None,
               record_move: MoveRecorder = _no_record,
               fov_window_radius: int = DEFAULT_WINDOW_RADIUS):
    self.sizes = training_sizes(info, fov_policy, fov_moves)
    threshold_logit = float(probability.logit_float32(threshold))
    shifts = list(shifts if shifts is not None else make_shifts(info.deltas))
    if fov_policy == 'fixed':
      policy = lambda canvas, labels: fixed_offsets(canvas, shifts, threshold_logit, labels,
                                                    record_move)
    elif fov_policy == 'fixed_offsets_window':
      policy = lambda canvas, labels: fixed_offsets_window(
          canvas, shifts, threshold_logit, info.deltas, fov_window_radius, labels, record_move)
    elif fov_policy == 'no_offsets':
      policy = lambda canvas, labels: no_offsets(record_move)
    else:
      check = fov_policy == 'max_pred_offsets'
      policy = lambda canvas, labels: max_pred_offsets(canvas, info, self.sizes,
                                                       threshold_logit, labels, record_move,
                                                       check_moves=check)
    done = on_example_done or (lambda example, canvas: None)
    self.slots = [ExampleSlot(next_example, info, self.sizes, policy, seed_pad, done)
                  for _ in range(batch_size)]

  def next_batch(self) -> tuple[np.ndarray, ...]:
    """Stacked (seed, image, labels, weights) crops, each [b, z, y, x, 1]."""
    rows = []
    for slot in self.slots:
      slot.advance()
      rows.append(slot.crops())
    return tuple(np.stack(parts) for parts in zip(*rows))

  def update(self, logits: np.ndarray) -> None:
    """Writes each row of the batch's predicted logits back into its example's canvas."""
    for slot, row in zip(self.slots, logits):
      slot.write_prediction(np.asarray(row))
