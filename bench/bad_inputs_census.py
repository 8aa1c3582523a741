#!/usr/bin/env python
"""Counts of the bad-input cases: tried / handled cleanly / tracebacks / left half-written.

Runs the bad-input tests (each case a subprocess of one script) with a census
file, then tallies it. Cases skipped by the tests (no tmpfs here) are not
counted as tried.

  python bench/bad_inputs_census.py [--no-tf] [-- extra pytest args]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_FILES = ['tests/test_bad_inputs.py', 'tests/test_bad_inputs_tf.py']


def tally(records: list[dict]) -> dict[str, int]:
  """The census counts of a list of case records."""
  return {
      'tried': len(records),
      'handled cleanly': sum(r['clean'] for r in records),
      'tracebacks': sum(r['traceback'] for r in records),
      'left half-written': sum(r['half_written'] for r in records),
  }


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--no-tf', action='store_true', help='skip the TensorFlow scripts')
  parser.add_argument('pytest_args', nargs='*')
  args = parser.parse_args()
  files = TEST_FILES[:1] if args.no_tf else TEST_FILES
  with tempfile.TemporaryDirectory() as tmp:
    census = os.path.join(tmp, 'census.jsonl')
    env = dict(os.environ, FFN_BAD_INPUTS_CENSUS=census, PYTHONPATH=REPO_ROOT)
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                           *files, *args.pytest_args], cwd=REPO_ROOT, env=env)
    records = []
    if os.path.exists(census):
      with open(census, encoding='utf-8') as f:
        records = [json.loads(line) for line in f]
  for record in records:
    if not record['clean']:
      print(f'NOT CLEAN: {record}')
  bad = [r for r in records if r.get('kind') != 'success']
  good = [r for r in records if r.get('kind') == 'success']
  print('bad inputs: ' + ' / '.join(f'{v} {k}' for k, v in tally(bad).items()))
  print(f'faults whose right answer is success (shared files, links, reruns after SIGKILL): '
        f'{sum(r["clean"] for r in good)} of {len(good)} correct')
  return proc.returncode


if __name__ == '__main__':
  sys.exit(main())
