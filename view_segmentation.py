#!/usr/bin/env python
"""Shows an image, a segmentation and optionally groundtruth in a local neuroglancer viewer.

The command lives in ffn.scripts.view_segmentation (installed as `ffn-view-segmentation`).
"""

from ffn.scripts.view_segmentation import run

if __name__ == '__main__':
  run()
