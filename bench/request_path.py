#!/usr/bin/env python
"""Which files and functions of the package one request passes, from run_inference.py to the npz.

Runs run_inference.py's main in this process on a small box of the bundled
sample with the README model (TensorFlow, float32), tracing every call into a
module under `ffn/`, and prints the count of files and functions and the
largest inference modules by lines.

  python bench/request_path.py [--size 60] [--list]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO_ROOT, 'ffn') + os.sep


def _trace(calls):
  def profile(frame, event, arg):
    del arg
    name = frame.f_code.co_name
    if (event == 'call' and frame.f_code.co_filename.startswith(PACKAGE)
        and not name.startswith('<')):  # Not comprehensions, lambdas or module bodies.
      calls[os.path.relpath(frame.f_code.co_filename, REPO_ROOT)].add(name)
  return profile


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--size', type=int, default=60, help='edge of the cubic box (voxels)')
  parser.add_argument('--list', action='store_true', help='list the files and functions')
  args = parser.parse_args()
  sys.path.insert(0, REPO_ROOT)
  os.chdir(REPO_ROOT)
  from ffn.scripts import run_inference  # pylint: disable=g-import-not-at-top
  with open(os.path.join(REPO_ROOT, 'configs', 'inference_training_sample2.pbtxt')) as f:
    request = f.read()
  with tempfile.TemporaryDirectory() as out:
    request = request.replace('results/fib25/training2', out)
    box = f'start {{ x:60 y:60 z:60 }} size {{ x:{args.size} y:{args.size} z:{args.size} }}'
    calls = collections.defaultdict(set)
    argv = ['run_inference.py', f'--inference_request={request}', f'--bounding_box={box}']
    from absl import flags  # pylint: disable=g-import-not-at-top
    flags.FLAGS(argv)
    sys.setprofile(_trace(calls))
    try:
      run_inference.main(argv[:1])
    finally:
      sys.setprofile(None)
  functions = sum(len(v) for v in calls.values())
  print(f'one request, run_inference.py to the npz: {len(calls)} files, {functions} functions')
  if args.list:
    for path in sorted(calls):
      print(f'  {path}: {", ".join(sorted(calls[path]))}')
  sizes = []
  for root, _, files in os.walk(os.path.join(REPO_ROOT, 'ffn', 'inference')):
    for name in files:
      if name.endswith('.py') and not name.endswith('_pb2.py'):
        path = os.path.join(root, name)
        with open(path) as f:
          sizes.append((sum(1 for _ in f), os.path.relpath(path, REPO_ROOT)))
  print('largest inference modules (lines): ' +
        ', '.join(f'{p} {n}' for n, p in sorted(sizes, reverse=True)[:5]))
  return 0


if __name__ == '__main__':
  sys.exit(main())
