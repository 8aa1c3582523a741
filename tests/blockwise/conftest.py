"""The blockwise tests build on the synthetic volumes and models of the inference tests."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / 'inference'))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
