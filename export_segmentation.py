#!/usr/bin/env python
"""Exports inference results (or any HDF5 volume) to HDF5, zarr, N5, precomputed or PNG.

The command lives in ffn.scripts.export_segmentation (installed as `ffn-export-segmentation`).
"""

from ffn.scripts.export_segmentation import run

if __name__ == '__main__':
  run()
