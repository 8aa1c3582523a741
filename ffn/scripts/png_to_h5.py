"""Stacks a directory of PNG slices into one HDF5 dataset (z, y, x[, c]).

Slices are stacked in the natural order of their names (slice_2 before slice_10).

  ffn-png-to-h5 --input_dir slices/ --dataset raw out.h5
"""

from __future__ import annotations

from absl import flags
from absl import logging

from ffn.utils import cli
from ffn.utils import png_to_h5

FLAGS = flags.FLAGS

flags.DEFINE_string('input_dir', '.', 'Directory holding the PNG slices.')
flags.DEFINE_string('pattern', '*.png', 'Glob pattern of the slices inside input_dir.')
flags.DEFINE_string('dataset', 'raw', 'Name of the HDF5 dataset to write.')


@cli.guard
def main(argv) -> None:
  if len(argv) != 2:
    cli.fail(f'expected one argument OUTPUT.h5, got {list(argv[1:])}')
  with cli.fail_on(png_to_h5.PngStackError):
    shape = png_to_h5.png_to_h5(FLAGS.input_dir, argv[1], FLAGS.dataset, FLAGS.pattern)
  logging.info('Wrote %s:%s with shape %s', argv[1], FLAGS.dataset, shape)


def run() -> None:
  """The command-line entry point."""
  cli.run(main, 'OUTPUT.h5')


if __name__ == '__main__':
  run()
