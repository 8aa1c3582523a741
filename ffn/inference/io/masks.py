"""Masks built from MaskConfig protos: boolean zyx arrays, true where excluded.

The mask arithmetic lives in ffn.utils.masks (training uses it too); this module
opens the mask volumes a request names.
"""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from ffn.inference import inference_pb2
from ffn.inference.io.volumes import decorated_volume
from ffn.utils import align
from ffn.utils import masks as masks_lib
from ffn.utils.axes import ZYX


def build_mask(masks: Iterable[inference_pb2.MaskConfig], corner_zyx: ZYX, size_zyx: ZYX,
               mask_volume_map: Optional[dict] = None, image: Optional[np.ndarray] = None,
               alignment: Optional[align.Alignment] = None) -> Optional[np.ndarray]:
  """The OR of the boolean zyx masks the MaskConfigs give for a box (see ffn.utils.masks)."""
  return masks_lib.build_mask(masks, corner_zyx, size_zyx, mask_volume_map, image, alignment,
                              open_mask_volume=lambda settings: decorated_volume(settings))
