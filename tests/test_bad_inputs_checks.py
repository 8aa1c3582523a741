"""Inputs that once ended in exit 0 and a wrong result, or lost data, for the scripts without TF.

Each case runs one script as a subprocess and asserts what a careless or
hostile input must give (see bad_inputs_lib): one error line naming the bad
value, a non-zero exit, no traceback, nothing written, inputs untouched; or,
where the right answer is success, that it succeeded and kept what is not its
own. The classes of input are those of bench/bad_inputs_census.py.
"""

from __future__ import annotations

import io
import zipfile

import h5py
import numpy as np
import pytest

from bad_inputs_lib import digest, expect_clean_failure, expect_success, run_script

SHAPE = (12, 20, 24)  # zyx, non-cubic
SEG_NPZ = ('0', '0', 'seg-0_0_0.npz')


def _labels() -> np.ndarray:
  labels = np.zeros(SHAPE, np.uint32)
  labels[:, :10, :] = 1
  labels[:, 10:, :12] = 2
  labels[:, 10:, 12:] = 3
  return labels


@pytest.fixture
def volumes(tmp_path):
  """gt.h5:stack, image.h5:raw and two finished result directories, seg and seg2."""
  from ffn.inference.io import probmaps  # pylint: disable=g-import-not-at-top
  from ffn.inference.io import results  # pylint: disable=g-import-not-at-top
  with h5py.File(tmp_path / 'gt.h5', 'w') as f:
    f.create_dataset('stack', data=_labels())
  with h5py.File(tmp_path / 'image.h5', 'w') as f:
    f.create_dataset('raw', data=np.random.default_rng(0).integers(0, 255, SHAPE, np.uint8))
  for name in ('seg', 'seg2'):
    path = tmp_path.joinpath(name, *SEG_NPZ)
    results.save_subvolume(_labels(), {}, str(path))
    probmaps.save_probability_map(np.full(SHAPE, 0.9, np.float32),
                                 str(path).replace('.npz', '.prob'))
  return tmp_path


def _evaluate(volumes, *extra, seg='seg'):
  out = volumes / 'report.json'
  return run_script('evaluate_segmentation.py', '--segmentation_dir', str(volumes / seg),
                    '--groundtruth', f'{volumes}/gt.h5:stack', '--noerl', '--output_json',
                    str(out), *extra), out


# ----------------------------------------------------------------------------
# Numbers: every flag finite and in its range.


@pytest.mark.parametrize('script,extra,names', [
    ('evaluate_segmentation.py', ['--threshold', 'nan'], ['--threshold=nan', '[0, 1]']),
    ('evaluate_segmentation.py', ['--threshold', '2'], ['--threshold=2', '[0, 1]']),
    ('evaluate_segmentation.py', ['--min_size', '-3'], ['--min_size=-3']),
    ('evaluate_segmentation.py', ['--border_distance', 'nan'], ['--border_distance=nan']),
    ('evaluate_segmentation.py', ['--num_offenders', '-1'], ['--num_offenders=-1']),
    ('export_segmentation.py', ['--threshold', '-0.5'], ['--threshold=-0.5']),
    ('export_segmentation.py', ['--voxel_size', '8,nan,8'], ['--voxel_size', 'nan']),
    ('export_segmentation.py', ['--voxel_size', '8,-8,8'], ['--voxel_size', '-8']),
    ('export_segmentation.py', ['--chunk_size', '64,0,64'], ['--chunk_size', '0']),
    ('export_segmentation.py', ['--corner', '0,-1,0'], ['--corner', '-1']),
    ('view_segmentation.py', ['--port', '70000'], ['--port=70000', '65535']),
    ('view_segmentation.py', ['--timeout_secs', 'nan'], ['--timeout_secs=nan']),
])
def test_result_script_numbers(volumes, script, extra, names):
  out = volumes / 'out.h5'
  common = ['--segmentation_dir', str(volumes / 'seg')]
  if script == 'evaluate_segmentation.py':
    common += ['--groundtruth', f'{volumes}/gt.h5:stack', '--output_json', str(out)]
  elif script == 'export_segmentation.py':
    common += ['--output', str(out)]
  else:
    common += ['--timeout_secs', '1'] if '--timeout_secs' not in extra else []
  proc = run_script(script, *common, *extra)
  expect_clean_failure(f'{script} {" ".join(extra)}', proc, names, outputs=[out],
                       klass='numbers')


@pytest.mark.parametrize('extra,names', [
    (['--thresholds', '0.5,nan'], ['nan', '(0, 1]']),
    (['--thresholds', '0.5,inf'], ['inf']),
    (['--id_whitelist', '18446744073709551616'], ['18446744073709551616', 'id_whitelist']),
    (['--id_whitelist', '-4'], ['-4', 'id_whitelist']),
    (['--min_size', '-5'], ['--min_size=-5']),
    (['--lom_radius', '2,-2,2'], ['lom_radius', '-2']),
    (['--exclusion_regions', '1,2,3,-4'], ['negative radius']),
])
def test_compute_partitions_numbers(volumes, extra, names):
  out = volumes / 'af.h5'
  args = {'--thresholds': '0.5', '--lom_radius': '2,2,2', '--min_size': '0'}
  for flag, value in zip(extra[::2], extra[1::2]):
    args[flag] = value
  proc = run_script('compute_partitions.py', '--input_volume', f'{volumes}/gt.h5:stack',
                    '--output_volume', f'{out}:af', *[x for kv in args.items() for x in kv])
  expect_clean_failure(f'compute_partitions {" ".join(extra)}', proc, names, outputs=[out],
                       klass='numbers')


def test_id_whitelist_beyond_int64_is_an_id_not_an_overflow(volumes):
  big = 2**63 + 5  # A valid uint64 id; absent here, so nothing is left to partition.
  out = volumes / 'af.h5'
  proc = run_script('compute_partitions.py', '--input_volume', f'{volumes}/gt.h5:stack',
                    '--output_volume', f'{out}:af', '--thresholds', '0.5',
                    '--lom_radius', '2,2,2', '--min_size', '0', '--id_whitelist', str(big))
  expect_clean_failure('compute_partitions id_whitelist above 2^63', proc,
                       ['no object to partition', 'id_whitelist'], outputs=[out],
                       klass='numbers')


@pytest.mark.parametrize('extra,names', [
    (['--min_overlap_fraction', 'nan'], ['--min_overlap_fraction=nan']),
    (['--block_timeout_secs', 'nan'], ['--block_timeout_secs=nan']),
    (['--num_workers', '0'], ['--num_workers=0']),
    (['--subvolume_size', '24,0,12'], ['--subvolume_size', '0']),
    (['--overlap', '4,-4,4'], ['--overlap', '-4']),
])
def test_stitch_numbers(volumes, extra, names):
  out = volumes / 'stitched.h5'
  args = {'--subvolume_size': '24,20,12', '--overlap': '4,4,4'}
  for flag, value in zip(extra[::2], extra[1::2]):
    args[flag] = value
  proc = run_script('stitch_segmentation.py', '--segmentation_dir', str(volumes / 'seg'),
                    '--bounding_box', 'start { x: 0 y: 0 z: 0 } size { x: 24 y: 20 z: 12 }',
                    '--output_volume', f'{out}:seg', *[x for kv in args.items() for x in kv])
  expect_clean_failure(f'stitch {" ".join(extra)}', proc, names, outputs=[out],
                       klass='numbers')


def test_consensus_numbers(volumes):
  out = volumes / 'cons'
  proc = run_script('run_consensus.py', '--segmentation1_dir', str(volumes / 'seg'),
                    '--segmentation2_dir', str(volumes / 'seg2'),
                    '--segmentation_output_dir', str(out), '--split_min_size', '-1')
  expect_clean_failure('run_consensus --split_min_size -1', proc, ['--split_min_size=-1'],
                       outputs=[out], klass='numbers')
  request = (f'segmentation1 {{ directory: "{volumes / "seg"}" threshold: nan }} '
             f'segmentation2 {{ directory: "{volumes / "seg2"}" }} '
             f'segmentation_output_dir: "{out}" type: CONSENSUS_SPLIT')
  proc = run_script('run_consensus.py', f'--consensus_request={request}')
  expect_clean_failure('run_consensus threshold nan', proc,
                       ['ConsensusRequest.segmentation1.threshold is nan'], outputs=[out],
                       klass='numbers')


# ----------------------------------------------------------------------------
# Files read: checked before they are trusted, every error naming the file.


def _npz(path, **arrays):
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, 'wb') as f:  # np.savez would add .npz to the name.
    np.savez(f, **arrays)
  return path


def _npz_declaring(path, member: str, shape, dtype=np.uint64, zip_size=None):
  """An npz whose `member` header declares `shape` (and the zip directory `zip_size` bytes)."""
  header = np.lib.format.header_data_from_array_1_0(np.zeros((1,), dtype))
  header['shape'] = tuple(shape)
  buf = io.BytesIO()
  np.lib.format.write_array_header_1_0(buf, header)
  header_size = buf.tell()
  buf.write(b'\0' * 4096)
  path.parent.mkdir(parents=True, exist_ok=True)
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as zf:
    with zf.open(member + '.npy', 'w', force_zip64=True) as f:
      f.write(buf.getvalue())
    if zip_size is not None:
      # What the directory says is what a reader inflates to: the bomb's size.
      zf.filelist[0].file_size = header_size + zip_size
  return path


@pytest.mark.parametrize('kind', ['header claims 1e15 voxels', 'zip bomb', 'float segmentation',
                                  'bool segmentation', '2-D segmentation', 'origins not a table',
                                  'float qprob', 'qprob of another shape'])
def test_result_files_checked_before_use(volumes, kind):
  bad = volumes / 'bad'
  path = bad.joinpath(*SEG_NPZ)
  extra = []
  if kind == 'header claims 1e15 voxels':
    _npz_declaring(path, 'segmentation', (10**5, 10**5, 10**5))
    names = [str(path), 'corrupt', '(100000, 100000, 100000)']
  elif kind == 'zip bomb':
    _npz_declaring(path, 'segmentation', (4000, 4000, 4000), zip_size=8 * 4000**3)
    names = [str(path), 'declares 512,000,000,128 bytes', 'refusing to inflate']
  elif kind == 'float segmentation':
    _npz(path, segmentation=_labels().astype(np.float32))
    names = [str(path), 'float32', 'integer ids']
  elif kind == 'bool segmentation':
    _npz(path, segmentation=_labels() > 1)
    names = [str(path), 'bool']
  elif kind == '2-D segmentation':
    _npz(path, segmentation=_labels()[0])
    names = [str(path), '2-D']
  elif kind == 'origins not a table':
    _npz(path, segmentation=_labels(), origins=np.arange(6).reshape(2, 3))
    names = [str(path), 'origins', 'not a table of segment origins']
  else:
    _npz(path, segmentation=_labels())
    qprob = (np.full(SHAPE, 0.5, np.float32) if kind == 'float qprob'
             else np.full(SHAPE[::-1], 200, np.uint8))
    prob = _npz(path.with_suffix('.prob'), qprob=qprob)
    names = [str(prob), 'float32' if kind == 'float qprob' else 'shape']
    extra = ['--threshold', '0.5']
  before = digest(bad)
  proc, out = _evaluate(volumes, *extra, seg='bad')
  expect_clean_failure(f'evaluate {kind}', proc, names, outputs=[out], untouched={bad: before},
                       klass='files')


# ----------------------------------------------------------------------------
# Outputs: never over what is not ours, never over an input.


def test_export_hdf5_overwrite_replaces_only_its_dataset(volumes):
  shared = volumes / 'shared.h5'
  with h5py.File(shared, 'w') as f:
    f.create_dataset('other', data=np.arange(5))
    f.create_dataset('seg', data=np.zeros(3))
  proc = run_script('export_segmentation.py', '--segmentation_dir', str(volumes / 'seg'),
                    '--output', str(shared), '--dataset', 'seg')
  text = expect_clean_failure('export into an HDF5 dataset that exists', proc,
                              [str(shared), "'seg'", '--overwrite'],
                              untouched={shared: digest(shared)}, klass='outputs')
  assert 'other datasets are kept' in text
  with expect_success("export --overwrite keeps the HDF5 file's other datasets", 'outputs'):
    proc = run_script('export_segmentation.py', '--segmentation_dir', str(volumes / 'seg'),
                      '--output', str(shared), '--dataset', 'seg', '--overwrite')
    assert proc.returncode == 0, proc.stderr[-2000:]
    with h5py.File(shared, 'r') as f:
      assert sorted(f) == ['other', 'seg']
      np.testing.assert_array_equal(f['other'][...], np.arange(5))
      np.testing.assert_array_equal(f['seg'][...], _labels())


def test_export_adds_a_dataset_to_a_shared_file(volumes):
  shared = volumes / 'gt.h5'  # Holds 'stack'; the export adds 'seg' beside it.
  with expect_success('export adds its dataset to a shared HDF5 file', 'outputs'):
    proc = run_script('export_segmentation.py', '--segmentation_dir', str(volumes / 'seg'),
                      '--output', str(shared), '--dataset', 'seg')
    assert proc.returncode == 0, proc.stderr[-2000:]
    with h5py.File(shared, 'r') as f:
      assert sorted(f) == ['seg', 'stack']
      np.testing.assert_array_equal(f['stack'][...], _labels())


@pytest.mark.parametrize('case', ['export its own input dataset', 'export over a non-HDF5 file',
                                  'partitions over their labels', 'consensus into its input',
                                  'export over its results', 'evaluation report over the '
                                  'groundtruth'])
def test_output_that_is_an_input_or_not_ours(volumes, case):
  gt = volumes / 'gt.h5'
  if case == 'export its own input dataset':
    protected = gt
    args = ['export_segmentation.py', '--segmentation', f'{gt}:stack', '--output', str(gt),
            '--dataset', 'stack', '--overwrite']
    names = [str(gt), 'is the input']
  elif case == 'export over a non-HDF5 file':
    protected = volumes / 'notes.h5'
    protected.write_text('a lab notebook, not HDF5')
    args = ['export_segmentation.py', '--segmentation_dir', str(volumes / 'seg'),
            '--output', str(protected), '--overwrite']
    names = [str(protected), 'not an HDF5 file']
  elif case == 'partitions over their labels':
    protected = gt
    args = ['compute_partitions.py', '--input_volume', f'{gt}:stack', '--output_volume',
            f'{gt}:stack', '--thresholds', '0.5', '--lom_radius', '2,2,2', '--min_size', '0']
    names = ['--output_volume', 'is the input']
  elif case == 'export over its results':
    protected = volumes / 'seg'
    args = ['export_segmentation.py', '--segmentation_dir', str(protected), '--output',
            str(protected), '--output_format', 'zarr', '--overwrite']
    names = [str(protected), 'holds the results being exported']
  elif case == 'evaluation report over the groundtruth':
    protected = gt
    args = ['evaluate_segmentation.py', '--segmentation_dir', str(volumes / 'seg'),
            '--groundtruth', f'{gt}:stack', '--output_json', str(gt), '--overwrite', '--noerl']
    names = [str(gt), 'is the input']
  else:
    protected = volumes / 'seg'
    args = ['run_consensus.py', '--segmentation1_dir', str(volumes / 'seg'),
            '--segmentation2_dir', str(volumes / 'seg2'),
            '--segmentation_output_dir', str(volumes / 'seg')]
    names = ['segmentation_output_dir', 'segmentation1 directory']
  proc = run_script(*args)
  expect_clean_failure(case, proc, names, untouched={protected: digest(protected)},
                       klass='outputs')


# ----------------------------------------------------------------------------
# Resuming under changed settings.


def test_consensus_rerun_with_other_settings_is_refused(volumes):
  out = volumes / 'cons'
  common = ['run_consensus.py', '--segmentation1_dir', str(volumes / 'seg'),
            '--segmentation2_dir', str(volumes / 'seg2'), '--segmentation_output_dir', str(out)]
  proc = run_script(*common, '--split_min_size', '10')
  assert proc.returncode == 0, proc.stderr[-2000:]
  before = digest(out)
  proc = run_script(*common, '--split_min_size', '20')
  expect_clean_failure('consensus rerun with another split_min_size', proc,
                       ['other settings', 'split_min_size'], untouched={out: before},
                       klass='resume')
  with expect_success('consensus rerun with the same settings reuses its result', 'resume'):
    proc = run_script(*common, '--split_min_size', '10')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert digest(out) == before


# ----------------------------------------------------------------------------
# Long values: cut in error lines, with their length.


@pytest.mark.parametrize('script,args', [
    ('compute_partitions.py', ['--input_volume', 'x' * 2_000_000 + '.h5:stack',
                               '--output_volume', 'o.h5:af', '--thresholds', '0.5',
                               '--lom_radius', '1,1,1']),
    ('evaluate_segmentation.py', ['--groundtruth', 'y' * 300_000 + '.h5:stack']),
    ('export_segmentation.py', ['--segmentation_dir', 'z' * 500_000, '--output', 'o.zarr']),
])
def test_long_values_are_cut_in_error_lines(volumes, script, args):
  # One argument of a command line holds at most 128 KiB: long values come in a flag file.
  flagfile = volumes / 'flags.txt'
  flagfile.write_text(''.join(f'{flag}={value}\n' for flag, value in zip(args[::2], args[1::2])))
  extra = (['--segmentation_dir', str(volumes / 'seg')]
           if script == 'evaluate_segmentation.py' else [])
  proc = run_script(script, f'--flagfile={flagfile}', *extra)
  text = expect_clean_failure(f'{script} with a value of {max(map(len, args)):,} characters',
                              proc, ['characters]'], klass='long values')
  assert len(text) < 5000, len(text)


def test_png_stack_into_a_shared_file_keeps_its_other_datasets(volumes):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  pngs = volumes / 'pngs'
  pngs.mkdir()
  for z in range(3):
    Image.fromarray(np.full((8, 9), z, np.uint8)).save(pngs / f'slice_{z}.png')
  shared = volumes / 'gt.h5'
  with expect_success('png_to_h5 into a shared HDF5 file', 'outputs'):
    proc = run_script('-m ffn.scripts.png_to_h5', '--input_dir', str(pngs), '--dataset', 'raw',
                      str(shared))
    assert proc.returncode == 0, proc.stderr[-2000:]
    with h5py.File(shared, 'r') as f:
      assert sorted(f) == ['raw', 'stack'] and f['raw'].shape == (3, 8, 9)
      np.testing.assert_array_equal(f['stack'][...], _labels())


def test_float_labels_are_not_object_ids(volumes):
  labels = volumes / 'float_gt.h5'
  with h5py.File(labels, 'w') as f:
    f.create_dataset('stack', data=_labels().astype(np.float32))
  out = volumes / 'af.h5'
  proc = run_script('compute_partitions.py', '--input_volume', f'{labels}:stack',
                    '--output_volume', f'{out}:af', '--thresholds', '0.5',
                    '--lom_radius', '2,2,2', '--min_size', '0')
  expect_clean_failure('compute_partitions float labels', proc, ['float32', 'integer object ids'],
                       outputs=[out], klass='volumes')
