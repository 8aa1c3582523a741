"""Writes a saved segmentation (npz with key `segmentation`, z, y, x) as one PNG per z slice.

color: RGB, black for 0 and one colour per id; gray16: the ids themselves (< 65536).

  ffn-npz-to-png --output_dir pngs/ results/fib25/training2/0/0/seg-0_0_0.npz
"""

from __future__ import annotations

from absl import flags
from absl import logging

from ffn.utils import cli
from ffn.utils import npz_to_png

FLAGS = flags.FLAGS

flags.DEFINE_string('output_dir', '.', 'Directory for the PNG slices.')
flags.DEFINE_enum('mode', 'color', npz_to_png.MODES, 'color: RGB per id; gray16: ids as 16-bit grey.')
flags.DEFINE_string('prefix', 'slice_', 'File name prefix of the slices.')


@cli.guard
def main(argv) -> None:
  if len(argv) != 2:
    cli.fail(f'expected one argument SEGMENTATION.npz, got {list(argv[1:])}')
  with cli.fail_on(npz_to_png.NpzToPngError):
    paths = npz_to_png.npz_to_png(argv[1], FLAGS.output_dir, FLAGS.mode, FLAGS.prefix)
  logging.info('Wrote %d slices to %s', len(paths), FLAGS.output_dir)


def run() -> None:
  """The command-line entry point."""
  cli.run(main, 'SEGMENTATION.npz')


if __name__ == '__main__':
  run()
