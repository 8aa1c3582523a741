#!/usr/bin/env python
"""Counts of the bad-input cases, per class of input: tried, clean, and what went wrong.

Runs the bad-input tests (each case a subprocess of one script, its expected
outcome asserted) with a census file, then tallies it: cases tried, handled
cleanly, and those that ended in a silent wrong result (exit 0), data loss,
a hang, a traceback, an unclear error or a half-written output. Cases skipped
by the tests (no tmpfs here) are not counted as tried.

  python bench/bad_inputs_census.py [--no-tf] [-- extra pytest args]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_FILES = ['tests/test_bad_inputs.py', 'tests/test_bad_inputs_checks.py',
              'tests/test_bad_inputs_tf.py']
TF_TEST_FILES = ('tests/test_bad_inputs_tf.py',)
# What can go wrong, in the order the tally prints it.
FAILURES = ('silent', 'data_loss', 'hang', 'traceback', 'unclear', 'half_written')
FAILURE_NAMES = {'silent': 'silent wrong results (exit 0)', 'data_loss': 'data loss',
                 'hang': 'hangs', 'traceback': 'tracebacks', 'unclear': 'unclear errors',
                 'half_written': 'half-written outputs'}


def tally(records: list[dict]) -> dict[str, int]:
  """The census counts of a list of case records."""
  counts = {'tried': len(records), 'handled cleanly': sum(r['clean'] for r in records)}
  for failure in FAILURES:
    counts[FAILURE_NAMES[failure]] = sum(bool(r.get(failure)) for r in records)
  return counts


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--no-tf', action='store_true', help='skip the TensorFlow scripts')
  parser.add_argument('pytest_args', nargs='*')
  args = parser.parse_args()
  files = [f for f in TEST_FILES if not (args.no_tf and f in TF_TEST_FILES)]
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
  by_class = collections.defaultdict(list)
  for record in bad:
    by_class[record.get('klass', 'other')].append(record)
  for klass in sorted(by_class):
    counts = tally(by_class[klass])
    wrong = ', '.join(f'{v} {k}' for k, v in list(counts.items())[2:] if v)
    print(f'  {klass}: {counts["tried"]} tried, {counts["handled cleanly"]} clean'
          + (f' ({wrong})' if wrong else ''))
  print(f'faults whose right answer is success (shared files, links, reruns after SIGKILL, '
        f'stale locks): {sum(r["clean"] for r in good)} of {len(good)} correct')
  return proc.returncode


if __name__ == '__main__':
  sys.exit(main())
