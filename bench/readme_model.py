"""The README model the benchmarks time: upstream's fib25 ConvStack3D and its checkpoint."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_NAME = 'convstack_3d.ConvStack3DFFNModel'
MODEL_ARGS = {'depth': 12, 'fov_size': [33, 33, 33], 'deltas': [8, 8, 8]}
CHECKPOINT = os.path.join(REPO, 'models', 'fib25', 'model.ckpt-27465036')
