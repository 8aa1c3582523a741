"""Opening the volumes an InferenceRequest names (DecoratedVolume protos), via ffn.utils.volumes."""

from __future__ import annotations

from ffn.inference import inference_pb2
from ffn.utils import volumes
from ffn.utils.masks import clip_subvolume_to_bounds  # pylint: disable=unused-import  (upstream name)
from ffn.utils.volumes import TensorStoreVolume  # pylint: disable=unused-import  (upstream name)


def decorated_volume(settings: inference_pb2.DecoratedVolume) -> volumes.Volume:
  """Opens the volume a DecoratedVolume names: a lazy 3-D or 4-D ffn.utils.volumes.Volume."""
  return volumes.open_decorated(settings)
