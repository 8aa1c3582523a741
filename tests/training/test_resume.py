"""A train_dir is resumed only by the model and optimizer that wrote its checkpoints."""

from __future__ import annotations

import pytest

from ffn.training import resume

NAME = 'convstack_3d.ConvStack3DFFNModel'


def _flags(train_dir, stamp, **values):
  lines = [f'--{k}={v}' for k, v in values.items()] + ['--noshuffle_moves']
  (train_dir / f'flags.{stamp}').write_text('\n'.join(lines) + '\n')


def test_the_newest_flags_file_is_compared(tmp_path):
  _flags(tmp_path, 100, model_name=NAME, model_args='{"depth": 2, "fov_size": [9, 9, 9]}')
  _flags(tmp_path, 200, model_name=NAME, optimizer='adam',
         model_args='{"fov_size": [9, 9, 9], "depth": 3}')
  (tmp_path / 'flags.notes').write_text('--model_name=x.Y\n')
  assert resume.newest_flags_file(str(tmp_path)).endswith('flags.200')
  newest = resume.newest_flags_file(str(tmp_path))
  assert resume.read_flags_file(newest)['noshuffle_moves'] == 'true'
  # Key order and spelled-out defaults do not matter.
  resume.check_settings(str(tmp_path), NAME, '{"depth": 3, "fov_size": [9, 9, 9], '
                        '"features": 32}', 'adam')


@pytest.mark.parametrize('model_args,optimizer,match', [
    ('{"depth": 3, "fov_size": [9, 9, 7]}', 'adam', r"another --model_args \(fov_size: "
     r"\[9, 9, 9\] there, \[9, 9, 7\] now"),
    ('{"depth": 3, "fov_size": [9, 9, 9], "deltas": [2, 2, 2]}', 'adam', 'deltas'),
    ('{"depth": 3, "fov_size": [9, 9, 9]}', 'sgd', r"another --optimizer \('adam' there, "
     r"'sgd' now"),
])
def test_other_settings_are_refused(tmp_path, model_args, optimizer, match):
  _flags(tmp_path, 200, model_name=NAME, optimizer='adam',
         model_args='{"fov_size": [9, 9, 9], "depth": 3}')
  with pytest.raises(resume.ResumeError, match=match):
    resume.check_settings(str(tmp_path), NAME, model_args, optimizer)


def test_a_train_dir_without_flags_cannot_be_checked(tmp_path):
  resume.check_settings(str(tmp_path), NAME, '{}', 'sgd')
