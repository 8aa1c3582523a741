#!/usr/bin/env python
"""The README's main job, timed and scored: the whole 250^3 sample, then its evaluation.

  python bench/full_sample.py [--configs fast,upstream] [--upstream_npz path/to/sample-training2.npz]

For each config (`fast`: configs/inference_training_sample2_fast.pbtxt, OpenVINO
bfloat16; `upstream`: configs/inference_training_sample2.pbtxt, TensorFlow
float32) it runs run_inference.py on the whole sample into a fresh directory
under --output_root (an existing result there is reused unless --rerun), and
scores every result, as saved (no connected-component split or size filter, as
upstream's shipped file), against the bundled groundtruth: evaluate_segmentation.py's
VI and adapted Rand error (segmentation 0 as singletons, its default), and the
VI over the voxels that both label (segmentation 0 and groundtruth 0 excluded).
`--upstream_npz` adds upstream google/ffn's own shipped result
(results/fib25/sample-training2.npz in its repository) to the table.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
from skimage.metrics import variation_of_information

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ffn.inference.io import results  # pylint: disable=g-import-not-at-top,wrong-import-position

SAMPLE = REPO / 'third_party' / 'neuroproof_examples' / 'training_sample2'
GROUNDTRUTH = f'{SAMPLE}/groundtruth.h5:stack'
CONFIGS = {'fast': REPO / 'configs' / 'inference_training_sample2_fast.pbtxt',
           'upstream': REPO / 'configs' / 'inference_training_sample2.pbtxt'}
WHOLE = 'start { x:0 y:0 z:0 } size { x:250 y:250 z:250 }'


def _segment(name: str, out_dir: pathlib.Path, rerun: bool) -> dict:
  """Runs one config on the whole sample (unless done); returns minutes, FOVs and model calls."""
  if rerun and out_dir.exists():
    shutil.rmtree(out_dir)
  text = CONFIGS[name].read_text()
  for line in text.splitlines():
    if line.startswith('segmentation_output_dir:'):
      text = text.replace(line, f'segmentation_output_dir: "{out_dir}"')
  minutes = None
  if not (out_dir / '0' / '0' / 'seg-0_0_0.npz').exists():
    start = time.time()
    subprocess.run([sys.executable, 'run_inference.py', f'--inference_request={text}',
                    f'--bounding_box={WHOLE}'], cwd=REPO, check=True)
    minutes = (time.time() - start) / 60
  counters = dict(line.split(': ') for line in
                  (out_dir / 'counters.txt').read_text().splitlines())
  calls = int(counters.get('inference-calls', 0))
  # FOVs of the objects added; with objects at once, some calls were spent on redone FOVs.
  return dict(minutes=minutes, fovs=int(counters.get('fovs-of-objects', calls)), calls=calls)


def _score_volume(spec: str, seg: np.ndarray, out_json: pathlib.Path) -> dict:
  """evaluate_segmentation.py's scores of the volume `spec`, plus the VI with 0s excluded."""
  subprocess.run([sys.executable, 'evaluate_segmentation.py', f'--segmentation={spec}',
                  f'--groundtruth={GROUNDTRUTH}', f'--output_json={out_json}', '--overwrite'],
                 cwd=REPO, check=True, stdout=subprocess.DEVNULL)
  scores = json.loads(out_json.read_text())
  with h5py.File(SAMPLE / 'groundtruth.h5', 'r') as f:
    truth = f['stack'][...]
  both = (truth > 0) & (seg > 0)
  split, merge = variation_of_information(truth[both], seg[both])
  return dict(split=scores['vi_split'], merge=scores['vi_merge'],
              are=scores['adapted_rand_error'], split0=split, merge0=merge,
              unsegmented=100 * scores['unsegmented_voxels'] / scores['total_voxels'])


def _raw_segmentation(npz_path: str) -> np.ndarray:
  """The segmentation array of a result npz as saved (no cleaning, alike for every result)."""
  with np.load(npz_path, allow_pickle=True) as data:
    return data['segmentation'].astype(np.uint64)


def _score(seg: np.ndarray, tmp: pathlib.Path, name: str) -> dict:
  path = tmp / f'{name}.h5'
  with h5py.File(path, 'w') as f:
    f.create_dataset('seg', data=seg)
  return _score_volume(f'{path}:seg', seg, tmp / f'{name}.json')


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--configs', default='fast,upstream')
  parser.add_argument('--output_root', default=str(REPO / 'results' / 'fib25' / 'full_sample'))
  parser.add_argument('--upstream_npz', default=None)
  parser.add_argument('--rerun', action='store_true', help='recompute existing results')
  args = parser.parse_args()
  rows = []
  with tempfile.TemporaryDirectory() as tmp_dir:
    tmp = pathlib.Path(tmp_dir)
    for name in [c for c in args.configs.split(',') if c]:
      if name not in CONFIGS:
        sys.exit(f'full_sample.py: error: unknown config {name!r}; expected {list(CONFIGS)}')
      out_dir = pathlib.Path(args.output_root) / name
      run = _segment(name, out_dir, args.rerun)
      seg = _raw_segmentation(results.segmentation_path(str(out_dir), (0, 0, 0)))
      rows.append((name, run, _score(seg, tmp, name)))
    if args.upstream_npz:
      seg = _raw_segmentation(args.upstream_npz)
      rows.append(('upstream shipped', dict(minutes=None, fovs=None, calls=None),
                   _score(seg, tmp, 'shipped')))

  print(f'{"result":17s} {"minutes":>7s} {"FOVs":>6s} {"calls":>6s} {"VI split":>8s} '
        f'{"VI merge":>8s} '
        f'{"ARE":>6s} {"split (0 excl.)":>15s} {"merge (0 excl.)":>15s} {"unsegmented %":>13s}')
  for name, run, s in rows:
    minutes = f'{run["minutes"]:.1f}' if run['minutes'] is not None else '-'
    fovs, calls = (str(run[k]) if run[k] is not None else '-' for k in ('fovs', 'calls'))
    print(f'{name:17s} {minutes:>7s} {fovs:>6s} {calls:>6s} {s["split"]:8.3f} {s["merge"]:8.3f} '
          f'{s["are"]:6.3f} {s["split0"]:15.3f} {s["merge0"]:15.3f} {s["unsegmented"]:13.1f}')
  print('VI split/merge and ARE: evaluate_segmentation.py (segmentation 0 as singletons); '
        '"0 excl.": VI over voxels labelled in both. "-": not timed (an existing result, or '
        'the shipped file). FOVs: of the objects added; calls: model calls, those of FOVs '
        'redone included (objects at once).')


if __name__ == '__main__':
  main()
