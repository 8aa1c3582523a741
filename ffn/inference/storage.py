"""Where inference results live on disk, as upstream code imports it (`ffn.inference.storage`).

The code lives in modules named for what they hold; this module gathers their
names under upstream's import path:

  volumes   opening the volumes a DecoratedVolume names
  probmaps  `.prob` probability maps (quantised uint8)
  results   subvolume paths, segmentation npz I/O, origins
  masks     masks built from MaskConfigs

Nothing here depends on TensorFlow.
"""

# pylint: disable=unused-import
from ffn.inference.io.masks import build_mask
from ffn.inference.io.probmaps import dequantize_probability
from ffn.inference.io.probmaps import load_probability_map
from ffn.inference.io.probmaps import load_quantized_probability
from ffn.inference.io.probmaps import quantize_probability
from ffn.inference.io.probmaps import save_probability_map
from ffn.inference.io.results import checkpoint_path
from ffn.inference.io.results import decode_origins
from ffn.inference.io.results import decode_overlaps
from ffn.inference.io.results import encode_origins
from ffn.inference.io.results import encode_overlaps
from ffn.inference.io.results import get_corner_from_path
from ffn.inference.io.results import get_existing_corners
from ffn.inference.io.results import get_existing_subvolume_path
from ffn.inference.io.results import legacy_object_prob_path
from ffn.inference.io.results import legacy_segmentation_path
from ffn.inference.io.results import legacy_subvolume_path
from ffn.inference.io.results import load_origins
from ffn.inference.io.results import load_segmentation
from ffn.inference.io.results import load_segmentation_from_source
from ffn.inference.io.results import object_prob_path
from ffn.inference.io.results import open_npz
from ffn.inference.io.results import OriginInfo
from ffn.inference.io.results import ORIGINS_DTYPE
from ffn.inference.io.results import OVERLAPS_DTYPE
from ffn.inference.io.results import save_subvolume
from ffn.inference.io.results import segmentation_path
from ffn.inference.io.results import subvolume_path
from ffn.inference.io.results import threshold_segmentation
from ffn.inference.io.volumes import clip_subvolume_to_bounds
from ffn.inference.io.volumes import decorated_volume
from ffn.inference.io.volumes import TensorStoreVolume
