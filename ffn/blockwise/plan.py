"""The plan of a blockwise run: grid, stitching settings and request, saved for workers."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

from google.protobuf import text_format

from ffn.blockwise import grid as grid_lib
from ffn.blockwise import stitching
from ffn.inference import inference_pb2
from ffn.utils import resolve

TASKS = ('inference', 'match', 'resolve', 'write')


@dataclasses.dataclass(frozen=True)
class BlockwisePlan:
  """Everything a scheduler or a worker needs, saved as JSON for workers started elsewhere.

  `request_text` is None when the subvolume results exist already (stitching
  only). `model_factory` ('module.attribute', optional) builds the model
  instead of the request's model_name and checkpoint (a notebook's model, a
  test's).
  """
  stitch: stitching.StitchSettings
  request_text: Optional[str] = None
  model_factory: str = ''
  max_retries: int = 2
  block_timeout_secs: float = 24 * 3600.0

  @property
  def grid(self) -> grid_lib.BlockGrid:
    return self.stitch.grid

  @property
  def work_dir(self) -> str:
    return self.stitch.work_dir

  @property
  def plan_path(self) -> str:
    return os.path.join(self.work_dir, 'plan.json')

  def to_json(self) -> str:
    """The plan as JSON text."""
    return json.dumps({
        'segmentation_dir': self.stitch.segmentation_dir, 'grid': self.grid.to_json_dict(),
        'output_volume': self.stitch.output_volume,
        'min_overlap_size': self.stitch.min_overlap_size,
        'min_overlap_fraction': self.stitch.min_overlap_fraction,
        'output_shape_zyx': self.stitch.output_shape_zyx,
        'active_blocks': self.stitch.active_blocks,
        'match_margin': self.stitch.match_margin, 'owner_decides': self.stitch.owner_decides,
        'voxel_size_xyz': self.stitch.voxel_size_xyz, 'request': self.request_text,
        'model_factory': self.model_factory, 'max_retries': self.max_retries,
        'block_timeout_secs': self.block_timeout_secs}, indent=1)

  @classmethod
  def from_json(cls, text: str) -> 'BlockwisePlan':
    """The plan of `to_json` text."""
    data = json.loads(text)
    settings = stitching.StitchSettings(
        data['segmentation_dir'], grid_lib.BlockGrid(**data['grid']), data['output_volume'],
        data['min_overlap_size'], data['output_shape_zyx'], data['min_overlap_fraction'],
        data.get('active_blocks'), data.get('match_margin', 0),
        data.get('owner_decides', False), data.get('voxel_size_xyz'))
    return cls(settings, data['request'], data['model_factory'], data['max_retries'],
               data['block_timeout_secs'])

  @classmethod
  def load(cls, path: str) -> 'BlockwisePlan':
    """The plan saved at `path`."""
    with open(path) as f:
      return cls.from_json(f.read())


def parse_request(text: str) -> inference_pb2.InferenceRequest:
  """The InferenceRequest of a plan."""
  return text_format.Parse(text, inference_pb2.InferenceRequest())


def build_model(model_factory: str):
  """The model the callable named 'module.attribute' returns."""
  return resolve.import_symbol(model_factory, what='model factory')()
