#!/usr/bin/env python
"""Exports a checkpoint once as an OpenVINO model, for inference workers without TensorFlow.

The command lives in ffn.scripts.export_model (installed as `ffn-export-model`).
"""

from ffn.scripts.export_model import run

if __name__ == '__main__':
  run()
