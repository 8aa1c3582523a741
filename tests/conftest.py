"""Shared test set-up: quiet TensorFlow, and paths to the bundled sample."""

import os
import pathlib

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import pytest  # pylint: disable=g-import-not-at-top

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO_ROOT / 'third_party' / 'neuroproof_examples' / 'training_sample2'
FIB25_CHECKPOINT = REPO_ROOT / 'models' / 'fib25' / 'model.ckpt-27465036'


@pytest.fixture
def repo_root() -> pathlib.Path:
  """The repository root, where the scripts live."""
  return REPO_ROOT
