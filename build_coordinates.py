#!/usr/bin/env python
"""Samples balanced training coordinates from partition volumes into a GZIP TFRecord.

The command lives in ffn.scripts.build_coordinates (installed as `ffn-build-coordinates`).
"""

from ffn.scripts.build_coordinates import run

if __name__ == '__main__':
  run()
