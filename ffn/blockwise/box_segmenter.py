"""Segments one box with a request as a stitched blockwise run (e.g. for checkpoint selection)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional, Sequence

from google.protobuf import text_format

from ffn.blockwise import grid as grid_lib
from ffn.blockwise import plan as plan_lib
from ffn.blockwise import scheduling
from ffn.blockwise import stitching
from ffn.inference import inference_pb2
from ffn.utils import bounding_box

# The stitched volume, inside the request's segmentation_output_dir.
STITCHED_FILE = 'stitched.h5'
STITCHED_DATASET = 'seg'


@dataclasses.dataclass(frozen=True)
class BlockwiseSegmenter:
  """Runs a request over `grid` on the blockwise scheduler and returns the stitched volume.

  The subvolume results go to the request's segmentation_output_dir, the
  stitched volume to `<that directory>/stitched.h5:seg`. A rerun after an
  interruption finishes the missing blocks; a finished one is not run again.
  Only the grid and the stitching settings decide the result (`key`); the
  worker settings decide how fast it comes.
  """
  grid: grid_lib.BlockGrid
  min_overlap_size: int = 100
  min_overlap_fraction: float = 0.5
  num_workers: int = 1
  worker_command: Optional[str] = None
  scheduler_host: Optional[str] = None
  threads_per_worker: int = 0
  max_retries: int = 2
  block_timeout_secs: float = 24 * 3600.0

  def key(self) -> dict[str, Any]:
    """What decides the result, for a scores file to record."""
    return {'mode': 'blockwise', 'subvolume_size_zyx': list(self.grid.subvolume_size),
            'overlap_zyx': list(self.grid.overlap), 'min_overlap_size': self.min_overlap_size,
            'min_overlap_fraction': self.min_overlap_fraction}

  def segment(self, request: inference_pb2.InferenceRequest, box: bounding_box.BoundingBox,
              shape_zyx: Sequence[int]) -> str:
    """Segments `box` (the grid's region) blockwise; the stitched volume spans 0 to `shape_zyx`."""
    assert (tuple(box.start_zyx), tuple(box.size_zyx)) == (self.grid.start, self.grid.size), (
        box, self.grid)
    output = (f'{os.path.join(request.segmentation_output_dir, STITCHED_FILE)}:'
              f'{STITCHED_DATASET}')
    settings = stitching.StitchSettings(
        request.segmentation_output_dir, self.grid, output, self.min_overlap_size,
        tuple(int(n) for n in shape_zyx), self.min_overlap_fraction)
    plan = plan_lib.BlockwisePlan(settings, text_format.MessageToString(request),
                                  max_retries=self.max_retries,
                                  block_timeout_secs=self.block_timeout_secs)
    scheduling.run(plan, self.num_workers, self.worker_command, self.scheduler_host,
                   progress=False, threads_per_worker=self.threads_per_worker)
    return output
