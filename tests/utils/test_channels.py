"""4-D images: the channel axis comes from the shape; ambiguity is refused."""

from __future__ import annotations

import numpy as np
import pytest

from ffn.utils import channels


@pytest.mark.parametrize('shape,axis', [((1, 14, 60, 120), 0), ((14, 60, 120, 1), 3),
                                        ((3, 20, 30, 40), 0), ((20, 30, 40, 2), 3)])
def test_channel_axis_from_shape(shape, axis):
  assert channels.channel_axis(shape, 'img') == axis


@pytest.mark.parametrize('shape', [(3, 20, 30, 2), (40, 20, 30, 50)])
def test_ambiguous_shapes_are_refused(shape):
  with pytest.raises(channels.ChannelAxisError, match=str(shape).replace('(', r'\(').replace(')', r'\)')):
    channels.channel_axis(shape, 'img')


def test_channels_last_reads_as_channels_first():
  data = np.arange(20 * 5 * 6 * 2).reshape(20, 5, 6, 2)  # z, y, x, c
  view = channels.channels_first(data, 'img')
  assert view.shape == (2, 20, 5, 6)
  expected = np.moveaxis(data, 3, 0)
  np.testing.assert_array_equal(view[0, 1:3, :, 2:5], expected[0, 1:3, :, 2:5])
  np.testing.assert_array_equal(view[:, 1:3], expected[:, 1:3])
  np.testing.assert_array_equal(view[(0,) + (slice(0, 2),) * 3], expected[0, :2, :2, :2])
  np.testing.assert_array_equal(np.asarray(view), expected)
  three_d = np.zeros((4, 5, 6))
  assert channels.channels_first(three_d, 'img') is three_d


def test_the_requested_box_settles_what_the_shape_leaves_open():
  shape = (14, 60, 120, 3)  # Both ends are short enough to be channels.
  with pytest.raises(channels.ChannelAxisError):
    channels.channel_axis(shape, 'img')
  assert channels.channel_axis(shape, 'img', box_end_zyx=(14, 60, 120)) == 3
  assert channels.channel_axis((3, 14, 60, 12), 'img', box_end_zyx=(14, 60, 12)) == 0
  with pytest.raises(channels.ChannelAxisError, match='ambiguous'):
    channels.channel_axis((3, 14, 60, 2), 'img', box_end_zyx=(3, 14, 2))
