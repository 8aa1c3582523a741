"""Skeleton metrics: expected run length (ERL), merges and splits along groundtruth skeletons.

Groundtruth skeletons are one graph: nodes at physical xyz positions (e.g. nm,
global: voxel (0, 0, 0) of the volume is at 0), edges, and the groundtruth
object each node belongs to. They come from the groundtruth labels (TEASAR
skeletons by kimimaro, with the voxel size as its anisotropy) or from SWC
files. Each node takes the segment found in its voxel.

Definitions, as in the FFN paper (Januszewski et al. 2018, Nature Methods):
  * An edge is correct when its two nodes lie in the same non-zero segment and
    that segment is not a merger. A merger is a segment holding nodes of two or
    more skeletons: every edge in it, on each skeleton it touches, is an error.
    An edge with a node in segment 0 (nothing segmented there) is an error too.
  * A run is a connected piece of correct edges (so it lies on one skeleton and
    in one segment); its length is the sum of its edge lengths.
  * ERL = sum over runs of length^2 / total skeleton length. This is each
    skeleton's length-weighted mean run length, weighted by the skeleton's share
    of the total length: the expected length of correct segment found around a
    point drawn uniformly along the groundtruth skeletons.
  * Splits: for each skeleton, the number of distinct non-zero segments on its
    nodes less one, summed. Merges: the number of merging segments.

funkelab's funlib.evaluate (`expected_run_length`) weights runs the same way
but differs in three respects: it pools all correct edges of one segment on a
skeleton into one run even where they are not connected (here a stretch of
background or of another segment ends a run); one merger zeroes the whole
skeleton it touches (here only the runs in the merging segment); and its merger
test does not leave segment 0 out (here background never merges).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any, Iterable, Sequence

from absl import logging
import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from ffn.utils import atomic
from ffn.utils import errors

SWC_GROUPINGS = ('file', 'tree')


class SkeletonError(errors.FFNError):
  """Skeletons or options that cannot be used (SWC files, voxel sizes, parameters)."""


@dataclasses.dataclass(frozen=True)
class Skeletons:
  """Groundtruth skeletons as one graph: node positions, edges, and the object of each node."""
  positions_xyz: np.ndarray  # (N, 3) float64, physical units, global.
  edges: np.ndarray  # (E, 2) int64 node indices; both ends on the same object.
  object_ids: np.ndarray  # (N,) int64: the groundtruth object (skeleton) of each node.

  def __post_init__(self):
    positions = np.asarray(self.positions_xyz, dtype=np.float64).reshape(-1, 3)
    edges = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
    ids = np.asarray(self.object_ids, dtype=np.int64).reshape(-1)
    if len(ids) != len(positions):
      raise SkeletonError(f'{len(positions)} node positions but {len(ids)} object ids')
    if edges.size and (edges.min() < 0 or edges.max() >= len(positions)):
      raise SkeletonError(f'edges refer to nodes outside 0..{len(positions) - 1}')
    if np.any(ids[edges[:, 0]] != ids[edges[:, 1]]):
      raise SkeletonError('an edge joins nodes of two different objects')
    object.__setattr__(self, 'positions_xyz', positions)
    object.__setattr__(self, 'edges', edges)
    object.__setattr__(self, 'object_ids', ids)

  @property
  def num_nodes(self) -> int:
    """How many nodes."""
    return len(self.positions_xyz)

  def edge_lengths(self) -> np.ndarray:
    """The length of each edge, in the units of the positions."""
    ends = self.positions_xyz[self.edges]
    return np.linalg.norm(ends[:, 0] - ends[:, 1], axis=1)

  def lengths(self) -> dict[int, float]:
    """Total edge length of each object that has edges."""
    ids, inverse = np.unique(self.object_ids[self.edges[:, 0]], return_inverse=True)
    totals = np.bincount(inverse.reshape(-1), weights=self.edge_lengths(), minlength=len(ids))
    return {int(i): float(t) for i, t in zip(ids, totals)}

  def subset(self, keep: np.ndarray) -> Skeletons:
    """The nodes where `keep` is true, with the edges between two of them."""
    keep = np.asarray(keep, dtype=bool)
    new_index = np.cumsum(keep) - 1
    kept_edges = self.edges[keep[self.edges].all(axis=1)]
    return Skeletons(self.positions_xyz[keep], new_index[kept_edges], self.object_ids[keep])

  def without_isolated_nodes(self) -> Skeletons:
    """The same graph less the nodes on no edge (they carry no length)."""
    on_edge = np.zeros(self.num_nodes, dtype=bool)
    on_edge[self.edges.reshape(-1)] = True
    return self.subset(on_edge)

  def select(self, object_id: int) -> Skeletons:
    """The skeleton of one object."""
    return self.subset(self.object_ids == object_id)

  @classmethod
  def concatenate(cls, parts: Sequence[Skeletons]) -> Skeletons:
    """One graph holding all of `parts` (object ids are kept as they are)."""
    if not parts:
      return cls(np.zeros((0, 3)), np.zeros((0, 2), np.int64), np.zeros(0, np.int64))
    starts = np.cumsum([0] + [p.num_nodes for p in parts[:-1]])
    return cls(np.concatenate([p.positions_xyz for p in parts]),
               np.concatenate([p.edges + s for p, s in zip(parts, starts)]),
               np.concatenate([p.object_ids for p in parts]))


def check_voxel_size(voxel_size_xyz: Sequence[float]) -> tuple[float, float, float]:
  """The voxel size as three positive floats, or a SkeletonError."""
  try:
    size = tuple(float(v) for v in voxel_size_xyz)
  except (TypeError, ValueError):
    size = ()
  if len(size) != 3 or not all(math.isfinite(v) and v > 0 for v in size):
    raise SkeletonError(f'voxel size must be three positive numbers x,y,z, got {voxel_size_xyz!r}')
  return size


# ----------------------------------------------------------------------------
# Skeletons from groundtruth labels.


@dataclasses.dataclass(frozen=True)
class KimimaroParams:
  """TEASAR settings: a traced path clears a ball of radius scale * (boundary distance) + const."""
  scale: float = 1.5
  const: float = 300.0  # Physical units (nm); branches shorter than about this are not traced.
  dust_threshold: int = 1000  # Connected pieces with at most this many voxels get no skeleton.
  parallel: int = 1  # Processes (<= 0: one per core).

  def check(self) -> None:
    """Raises SkeletonError for values kimimaro cannot use."""
    if not (math.isfinite(self.scale) and self.scale >= 0):
      raise SkeletonError(f'kimimaro scale must be >= 0, got {self.scale}')
    if not (math.isfinite(self.const) and self.const >= 0):
      raise SkeletonError(f'kimimaro const must be >= 0, got {self.const}')
    if self.dust_threshold < 0:
      raise SkeletonError(f'kimimaro dust threshold must be >= 0, got {self.dust_threshold}')


def skeletonize_labels(labels_zyx: np.ndarray, voxel_size_xyz: Sequence[float],
                       params: KimimaroParams = KimimaroParams(),
                       offset_xyz: Sequence[int] = (0, 0, 0)) -> Skeletons:
  """TEASAR skeletons (kimimaro) of every non-zero label of a zyx volume, in global physical xyz.

  `offset_xyz` is the global voxel position of labels_zyx[0, 0, 0].
  """
  # kimimaro costs ~1.5 s to import; only skeletonizing needs it.
  import kimimaro  # pylint: disable=g-import-not-at-top
  from kimimaro import intake  # pylint: disable=g-import-not-at-top
  voxel_size = np.asarray(check_voxel_size(voxel_size_xyz))
  params.check()
  if labels_zyx.ndim != 3 or not np.issubdtype(labels_zyx.dtype, np.integer):
    raise SkeletonError(f'labels must be a 3-D integer volume, got shape {labels_zyx.shape} '
                        f'dtype {labels_zyx.dtype}')
  teasar = dict(intake.DEFAULT_TEASAR_PARAMS, scale=params.scale, const=params.const)
  start = time.time()
  # kimimaro reads array axis 0 as x: the transposed (xyz, Fortran-ordered) view needs no copy.
  by_label = kimimaro.skeletonize(
      labels_zyx.T, teasar_params=teasar, anisotropy=tuple(voxel_size),
      dust_threshold=params.dust_threshold, progress=False, parallel=params.parallel)
  shift = np.asarray(offset_xyz, dtype=np.float64) * voxel_size
  parts = [Skeletons(skeleton.vertices.astype(np.float64) + shift, skeleton.edges,
                     np.full(len(skeleton.vertices), label, dtype=np.int64))
           for label, skeleton in sorted(by_label.items())]
  skeletons = Skeletons.concatenate(parts)
  logging.info('skeletonized %d groundtruth objects of a %s (zyx) volume: %d nodes in %.1f s',
               len(parts), labels_zyx.shape, skeletons.num_nodes, time.time() - start)
  return skeletons


# ----------------------------------------------------------------------------
# SWC files: "id type x y z radius parent" per node, parent -1 for a root.


def _parse_swc(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(positions, edges as node indices, tree index of each node) of one SWC file."""
  ids, positions, parents = [], [], []
  try:
    with open(path, encoding='utf-8') as f:
      lines = f.readlines()
  except (OSError, UnicodeDecodeError) as e:
    raise SkeletonError(f'cannot read SWC file {path}: {e}') from e
  for number, line in enumerate(lines, 1):
    text = line.split('#', 1)[0].strip()
    if not text:
      continue
    fields = text.split()
    try:
      if len(fields) < 7:
        raise ValueError
      node, parent = int(fields[0]), int(float(fields[6]))
      xyz = [float(v) for v in fields[2:5]]
    except ValueError:
      raise SkeletonError(f'{path}:{number}: expected "id type x y z radius parent", '
                          f'got {line.strip()!r}') from None
    ids.append(node)
    positions.append(xyz)
    parents.append(parent)
  index = {node: i for i, node in enumerate(ids)}
  if len(index) != len(ids):
    raise SkeletonError(f'{path}: node ids are not unique')
  edges = []
  for node, parent in zip(ids, parents):
    if parent < 0:  # -1 marks a root.
      continue
    if parent not in index:
      raise SkeletonError(f'{path}: node {node} has parent {parent}, which is not in the file')
    edges.append((index[parent], index[node]))
  edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
  graph = sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])),
                            shape=(len(ids), len(ids)))
  _, trees = csgraph.connected_components(graph, directed=False)
  return np.asarray(positions, dtype=np.float64).reshape(-1, 3), edges, trees


def swc_paths(paths: Iterable[str]) -> list[str]:
  """The SWC files named: each path is a file, or a directory whose *.swc files are taken."""
  files = []
  for path in paths:
    if os.path.isdir(path):
      found = sorted(os.path.join(path, name) for name in os.listdir(path)
                     if name.lower().endswith('.swc'))
      if not found:
        raise SkeletonError(f'directory {path} holds no .swc files')
      files.extend(found)
    elif os.path.isfile(path):
      files.append(path)
    else:
      raise SkeletonError(f'SWC path {path} does not exist')
  return files


def read_swc(paths: Iterable[str], grouping: str = 'file') -> Skeletons:
  """Skeletons from SWC files (or directories of them); positions in physical global xyz.

  grouping 'file': each file is one groundtruth object (as kimimaro writes them);
  'tree': each tree (a root and its descendants) is one object.
  """
  if grouping not in SWC_GROUPINGS:
    raise SkeletonError(f'SWC grouping must be one of {SWC_GROUPINGS}, got {grouping!r}')
  parts, next_id = [], 1
  for path in swc_paths(paths):
    positions, edges, trees = _parse_swc(path)
    if grouping == 'file':
      object_ids = np.full(len(positions), next_id, dtype=np.int64)
      next_id += 1
    else:
      object_ids = next_id + trees.astype(np.int64)
      next_id += int(trees.max()) + 1 if len(trees) else 0
    parts.append(Skeletons(positions, edges, object_ids))
  return Skeletons.concatenate(parts)


def format_swc(skeletons: Skeletons) -> str:
  """SWC text for a graph: one tree per connected piece, parents listed before children.

  A skeleton with cycles loses the edges that close them (SWC holds trees only).
  """
  n = skeletons.num_nodes
  edges = skeletons.edges
  graph = sparse.csr_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
  num_pieces, piece = csgraph.connected_components(graph, directed=False)
  lines = ['# id type x y z radius parent']
  swc_id = np.zeros(n, dtype=np.int64)
  written = 0
  for root in np.unique(piece, return_index=True)[1]:
    order, predecessors = csgraph.breadth_first_order(
        graph, int(root), directed=False, return_predecessors=True)
    for node in order:
      written += 1
      swc_id[node] = written
      parent = predecessors[node]
      x, y, z = skeletons.positions_xyz[node]
      lines.append(f'{written} 0 {float(x)!r} {float(y)!r} {float(z)!r} 0 '
                   f'{swc_id[parent] if parent >= 0 else -1}')
  dropped = len(np.unique(np.sort(edges, axis=1), axis=0)) - (n - num_pieces)
  if dropped > 0:
    logging.warning('SWC holds trees only: %d edges closing cycles are left out', dropped)
  return '\n'.join(lines) + '\n'


def check_swc_directory(directory: str) -> None:
  """Raises SkeletonError unless `directory` is absent or a directory of .swc files only."""
  if not os.path.exists(directory):
    return
  if not os.path.isdir(directory):
    raise SkeletonError(f'{directory} exists and is not a directory')
  others = [n for n in os.listdir(directory) if not n.lower().endswith('.swc')]
  if others:
    raise SkeletonError(f'{directory} holds files other than .swc ({others[0]}); '
                        'not replacing it')


def write_swc_files(directory: str, skeletons: Skeletons) -> list[str]:
  """Writes `<object id>.swc` per object into `directory`, replacing what was there.

  The files are written into a temporary directory renamed into place at the
  end, so `directory` holds one complete set (and no stale files).
  """
  check_swc_directory(directory)
  names = []
  with atomic.atomic_directory(directory, overwrite=True) as staging:
    for object_id in np.unique(skeletons.object_ids):
      names.append(f'{int(object_id)}.swc')
      with open(os.path.join(staging, names[-1]), 'w', encoding='utf-8') as f:
        f.write(format_swc(skeletons.select(int(object_id))))
  return [os.path.join(directory, name) for name in names]


# ----------------------------------------------------------------------------
# Scoring a segmentation.


@dataclasses.dataclass
class SkeletonMetrics:
  """ERL and merge/split counts of a segmentation on groundtruth skeletons (see module doc)."""
  erl: float  # Physical units (nm); NaN without skeletons.
  max_erl: float  # The ERL of a perfect segmentation of the same skeletons (crop-limited).
  total_length: float
  num_skeletons: int  # Objects with at least one edge in the scored region.
  num_nodes: int
  num_runs: int
  merges: int  # Segments holding nodes of two or more skeletons.
  splits: int  # Extra segments along skeletons.
  unsegmented_length: float  # Edges with a node in segment 0.
  merged_length: float  # Edges inside merging segments.
  merging_segments: dict[int, list[int]]  # Segment -> the skeleton (object) ids it touches.

  def to_json_dict(self) -> dict[str, Any]:
    """A JSON-ready dict, lengths in nm (NaN becomes null)."""
    clean = lambda v: v if math.isfinite(v) else None
    return {
        'erl_nm': clean(self.erl), 'max_erl_nm': clean(self.max_erl),
        'skeleton_length_nm': self.total_length, 'num_skeletons': self.num_skeletons,
        'num_nodes': self.num_nodes, 'num_runs': self.num_runs,
        'merges': self.merges, 'splits': self.splits,
        'unsegmented_length_nm': self.unsegmented_length,
        'merged_length_nm': self.merged_length,
        'merging_segments': [{'segment': s, 'skeletons': ids}
                             for s, ids in sorted(self.merging_segments.items())],
    }


def _squared_piece_lengths(num_nodes: int, edges: np.ndarray, lengths: np.ndarray
                           ) -> tuple[float, int]:
  """(sum of squared lengths of the connected pieces of `edges`, how many pieces have edges)."""
  if not len(edges):
    return 0.0, 0
  graph = sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])),
                            shape=(num_nodes, num_nodes))
  _, piece = csgraph.connected_components(graph, directed=False)
  piece_lengths = np.bincount(piece[edges[:, 0]], weights=lengths)
  piece_lengths = piece_lengths[np.bincount(piece[edges[:, 0]]) > 0]
  return float(np.sum(piece_lengths ** 2)), len(piece_lengths)


def run_length_metrics(skeletons: Skeletons, node_segments: np.ndarray) -> SkeletonMetrics:
  """Scores the segment of each node (`node_segments`, 0 = unsegmented) as the module doc says."""
  segments = np.asarray(node_segments).astype(np.int64).reshape(-1)
  if len(segments) != skeletons.num_nodes:
    raise SkeletonError(f'{len(segments)} node segments for {skeletons.num_nodes} nodes')
  edges, lengths = skeletons.edges, skeletons.edge_lengths()
  total = float(lengths.sum())

  # Merges: non-zero segments found on nodes of two or more skeletons.
  pairs = np.unique(np.stack([segments, skeletons.object_ids], axis=1)[segments != 0], axis=0)
  segment_ids, skeleton_counts = np.unique(pairs[:, 0], return_counts=True)
  mergers = segment_ids[skeleton_counts > 1]
  merging = {int(s): sorted(int(o) for o in pairs[pairs[:, 0] == s, 1]) for s in mergers}
  # Splits: each skeleton's distinct non-zero segments beyond the first.
  _, segments_per_skeleton = np.unique(pairs[:, 1], return_counts=True)
  splits = int(np.sum(segments_per_skeleton - 1))

  seg_a, seg_b = segments[edges[:, 0]], segments[edges[:, 1]]
  unsegmented = (seg_a == 0) | (seg_b == 0)
  in_merger = np.isin(seg_a, mergers) | np.isin(seg_b, mergers)
  correct = (seg_a == seg_b) & ~unsegmented & ~in_merger
  squared, num_runs = _squared_piece_lengths(skeletons.num_nodes, edges[correct],
                                             lengths[correct])
  perfect, _ = _squared_piece_lengths(skeletons.num_nodes, edges, lengths)
  return SkeletonMetrics(
      erl=squared / total if total > 0 else math.nan,
      max_erl=perfect / total if total > 0 else math.nan,
      total_length=total, num_skeletons=len(skeletons.lengths()),
      num_nodes=skeletons.num_nodes, num_runs=num_runs, merges=len(mergers), splits=splits,
      unsegmented_length=float(lengths[unsegmented].sum()),
      merged_length=float(lengths[in_merger & ~unsegmented].sum()),
      merging_segments=merging)


def node_segments(skeletons: Skeletons, segmentation_zyx: np.ndarray,
                  voxel_size_xyz: Sequence[float], offset_xyz: Sequence[int] = (0, 0, 0)
                  ) -> tuple[np.ndarray, np.ndarray]:
  """(segment at each node, whether the node is inside the volume) for a zyx segmentation.

  `offset_xyz` is the global voxel position of segmentation_zyx[0, 0, 0]; a node
  falls in the voxel nearest its position / voxel size.
  """
  voxel_size = np.asarray(check_voxel_size(voxel_size_xyz))
  voxels = np.rint(skeletons.positions_xyz / voxel_size).astype(np.int64)
  voxels -= np.asarray(offset_xyz, dtype=np.int64)
  shape_xyz = np.asarray(segmentation_zyx.shape[::-1])
  inside = np.all((voxels >= 0) & (voxels < shape_xyz), axis=1)
  segments = np.zeros(skeletons.num_nodes, dtype=np.int64)
  x, y, z = voxels[inside].T
  segments[inside] = segmentation_zyx[z, y, x]
  return segments, inside


def evaluate_skeletons(skeletons: Skeletons, segmentation_zyx: np.ndarray,
                       voxel_size_xyz: Sequence[float],
                       offset_xyz: Sequence[int] = (0, 0, 0)) -> SkeletonMetrics:
  """Scores a zyx segmentation on the parts of `skeletons` inside it (nodes outside are cut)."""
  segments, inside = node_segments(skeletons, segmentation_zyx, voxel_size_xyz, offset_xyz)
  kept = skeletons.subset(inside)
  on_edge = np.zeros(kept.num_nodes, dtype=bool)
  on_edge[kept.edges.reshape(-1)] = True
  metrics = run_length_metrics(kept.subset(on_edge), segments[inside][on_edge])
  logging.info('skeleton metrics: %d skeletons, %d nodes (%d outside the region), '
               '%.0f nm, ERL %.0f nm', metrics.num_skeletons, metrics.num_nodes,
               int(np.count_nonzero(~inside)), metrics.total_length, metrics.erl)
  return metrics


def format_report(metrics: SkeletonMetrics, source: str, num_listed: int = 10) -> str:
  """A plain-text table of the skeleton metrics and the `num_listed` worst merging segments."""
  lines = [f'skeletons: {source}', '',
           f'{"skeleton metric":<28}{"value":>12}',
           f'{"expected run length (nm)":<28}{metrics.erl:>12.1f}',
           f'{"  perfect segmentation (nm)":<28}{metrics.max_erl:>12.1f}',
           f'{"skeleton length (nm)":<28}{metrics.total_length:>12.1f}',
           f'{"skeletons":<28}{metrics.num_skeletons:>12d}',
           f'{"merges (segments)":<28}{metrics.merges:>12d}',
           f'{"splits (extra segments)":<28}{metrics.splits:>12d}',
           f'{"unsegmented length (nm)":<28}{metrics.unsegmented_length:>12.1f}',
           f'{"length in mergers (nm)":<28}{metrics.merged_length:>12.1f}']
  worst = sorted(metrics.merging_segments.items(), key=lambda item: (-len(item[1]), item[0]))
  if worst:
    lines += ['', 'segments merging skeletons (segment: groundtruth objects)']
    lines += [f'  {segment:>12}: {" ".join(map(str, objects))}'
              for segment, objects in worst[:num_listed]]
    if len(worst) > num_listed:
      lines.append(f'  ... and {len(worst) - num_listed} more')
  return '\n'.join(lines)
