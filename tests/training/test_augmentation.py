"""Permute/reflect augmentation: correct transforms, one shared draw per example."""

import numpy as np
import pytest
import tensorflow as tf

from ffn.training import augmentation


@pytest.mark.parametrize('perm,reflect', [((0, 1, 2), (False, False, False)),
                                          ((0, 2, 1), (True, False, True)),
                                          ((2, 1, 0), (False, True, False))])
def test_apply_transform_matches_numpy(perm, reflect):
  x = np.arange(4 * 4 * 4 * 2).reshape(4, 4, 4, 2)
  out = augmentation.apply_transform(tf.constant(x), tf.constant(perm), tf.constant(reflect))
  expected = np.transpose(x, list(perm) + [3])
  for axis in range(3):
    if reflect[axis]:
      expected = np.flip(expected, axis)
  np.testing.assert_array_equal(out.numpy(), expected)


def test_sample_transform_respects_allowed_axes():
  seen_perms, seen_reflect = set(), np.zeros(3, bool)
  for _ in range(60):
    perm, reflect = augmentation.sample_transform([1, 2], [0, 2])
    perm, reflect = tuple(perm.numpy()), reflect.numpy()
    assert perm[0] == 0 and sorted(perm) == [0, 1, 2]
    assert not reflect[1]
    seen_perms.add(perm)
    seen_reflect |= reflect
  assert seen_perms == {(0, 1, 2), (0, 2, 1)}
  assert seen_reflect.tolist() == [True, False, True]
  perm, reflect = augmentation.sample_transform([], [])
  assert tuple(perm.numpy()) == (0, 1, 2) and not reflect.numpy().any()


def test_check_axes_rejects_bad_values():
  assert augmentation.check_axes(['1', '2'], 'x') == [1, 2]
  for bad in (['3'], ['a'], ['1', '1']):
    with pytest.raises(ValueError, match='subset of 0,1,2'):
      augmentation.check_axes(bad, '--permutable_axes')
