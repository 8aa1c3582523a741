"""train.py as users run it: the README pipeline end to end, and bad input."""

import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, SAMPLE_DIR

README_MODEL_ARGS = '{"depth": 12, "fov_size": [33, 33, 33], "deltas": [8, 8, 8]}'


def _run(args, cwd=REPO_ROOT, timeout=300):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run([sys.executable] + args, cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=timeout)


def _train_args(coords, train_dir, *extra):
  return ['train.py', '--train_coords', str(coords),
          '--data_volumes', f'validation1:{SAMPLE_DIR}/grayscale_maps.h5:raw',
          '--label_volumes', f'validation1:{SAMPLE_DIR}/groundtruth.h5:stack',
          '--model_name', 'convstack_3d.ConvStack3DFFNModel',
          '--model_args', README_MODEL_ARGS, '--image_mean', '128', '--image_stddev', '33',
          '--train_dir', str(train_dir)] + list(extra)


@pytest.mark.skipif(not (REPO_ROOT / 'build_coordinates.py').exists(),
                    reason='build_coordinates.py is not there yet')
def test_readme_pipeline_partitions_coordinates_train(tmp_path):
  af = tmp_path / 'af.h5'
  coords = tmp_path / 'tf_record_file'
  result = _run(['compute_partitions.py',
                 '--input_volume', f'{SAMPLE_DIR}/groundtruth.h5:stack',
                 '--output_volume', f'{af}:af',
                 '--thresholds', '0.025,0.05,0.075,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9',
                 '--lom_radius', '24,24,24', '--min_size', '10000'])
  assert result.returncode == 0, result.stderr[-2000:]
  result = _run(['build_coordinates.py', '--partition_volumes', f'validation1:{af}:af',
                 '--coordinate_output', str(coords), '--margin', '24,24,24'])
  assert result.returncode == 0, result.stderr[-2000:]
  train_dir = tmp_path / 'train'
  result = _run(_train_args(coords, train_dir, '--max_steps', '2', '--batch_size', '1',
                            '--master', 'grpc://old:2222', '--precision', 'bfloat16'))
  assert result.returncode == 0, result.stderr[-3000:]
  assert (train_dir / 'model.ckpt-2.index').exists()
  assert list(train_dir.glob('events.out.tfevents.*'))
  assert list(train_dir.glob('flags.*'))
  assert 'steps/s' in result.stderr
  assert '--master' in result.stderr and 'no effect' in result.stderr
  # bfloat16 where the hardware has it, else float32 with the reason.
  assert 'Training computes in' in result.stderr


def test_bad_input_exits_non_zero_with_one_clear_message(tmp_path):
  result = _run(_train_args(tmp_path / 'missing.tfr', tmp_path / 'train', '--max_steps', '1'))
  assert result.returncode == 1
  assert f"coordinate file '{tmp_path / 'missing.tfr'}' does not exist" in result.stderr
  assert 'Traceback' not in result.stderr
  assert 'TF1' not in result.stderr  # No TF1 flag given: nothing said about them.


def test_tf1_flag_given_is_warned_about(tmp_path):
  result = _run(_train_args(tmp_path / 'missing.tfr', tmp_path / 'train', '--max_steps', '1',
                            '--ps_tasks', '0'))
  assert result.returncode == 1
  warned = [line for line in result.stderr.splitlines() if 'TF1 distribution flag' in line]
  assert len(warned) == 1 and '--ps_tasks=0' in warned[0]
  args = _train_args(tmp_path / 'missing.tfr', tmp_path / 'train')
  args[args.index('--model_name') + 1] = 'convstack_3d.NoSuchModel'
  result = _run(args)
  assert result.returncode == 1 and 'unknown model' in result.stderr


def test_unknown_precision_is_one_clear_error(tmp_path):
  result = _run(_train_args(tmp_path / 'missing.tfr', tmp_path / 'train', '--precision',
                            'float8'))
  assert result.returncode != 0
  assert 'float8' in result.stderr and 'Traceback' not in result.stderr


@pytest.mark.parametrize('extra,message', [
    (['--misalignment_prob', '2'], 'misalignment_prob'),
    (['--contrast_range', '1.2,0.8'],
     'contrast_range is (1.2, 0.8); expected two numbers low,high with low <= high'),
    (['--brightness_range', 'a,b'], "--brightness_range is 'a,b'; expected two numbers"),
    (['--misalignment_max_shift', '3'], '--misalignment_max_shift has no effect unless '
                                        '--misalignment_prob is above 0'),
    (['--fov_window_radius', '3'], "fov_window_radius is 3 but fov_policy is 'fixed'"),
    (['--fov_policy', 'sideways'], 'fov_policy'),
])
def test_bad_augmentation_or_policy_flag_is_one_clear_error(tmp_path, extra, message):
  result = _run(_train_args(tmp_path / 'missing.tfr', tmp_path / 'train', *extra))
  assert result.returncode != 0
  assert message in result.stderr and 'Traceback' not in result.stderr


def test_help_lists_the_augmentation_flags():
  result = _run(['train.py', '--help'], timeout=120)
  assert result.returncode == 0
  for name in ('--elastic_warp_prob', '--misalignment_prob', '--missing_section_prob',
               '--out_of_focus_prob', '--contrast_range', '--brightness_range',
               '--noise_additive_stdev', '--fov_window_radius', 'fixed_window'):
    assert name in result.stdout, name
