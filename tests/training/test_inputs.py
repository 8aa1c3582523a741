"""The tf.data input pipeline: coordinate files, patches, labels, normalisation."""

import numpy as np
import pytest
import tensorflow as tf

from ffn.training import inputs
import training_fixtures


def test_expand_coordinate_paths(tmp_path):
  for name in ('a-00000-of-00002', 'a-00001-of-00002', 'b.tfr', 'c.tfr'):
    (tmp_path / name).write_bytes(b'')
  a = str(tmp_path / 'a')
  assert inputs.expand_coordinate_paths(f'{a}@2') == [f'{a}-00000-of-00002',
                                                      f'{a}-00001-of-00002']
  spec = f'{tmp_path}/b.tfr, {tmp_path}/[c].tfr ,{a}@2'
  assert len(inputs.expand_coordinate_paths(spec)) == 4
  with pytest.raises(inputs.InputError, match='does not exist'):
    inputs.expand_coordinate_paths(str(tmp_path / 'missing.tfr'))
  with pytest.raises(inputs.InputError, match='shards'):
    inputs.expand_coordinate_paths(f'{a}@3')
  with pytest.raises(inputs.InputError, match='matches'):
    inputs.expand_coordinate_paths(f'{tmp_path}/*.gz')


def test_coordinate_dataset_reads_all_records_repeating(tmp_path):
  centers = [(1, 2, 3), (4, 5, 6), (7, 8, 9)]
  training_fixtures.write_coordinates(tmp_path / 'c.tfr', centers, name='vol1')
  once = inputs.coordinate_dataset([str(tmp_path / 'c.tfr')], shuffle_buffer=4, repeat=False)
  got = [(tuple(int(v) for v in c.numpy()), n.numpy()) for c, n in once]
  assert sorted(got) == [(c, b'vol1') for c in centers]
  repeating = inputs.coordinate_dataset([str(tmp_path / 'c.tfr')], shuffle_buffer=4)
  assert {tuple(int(v) for v in c.numpy()) for c, _ in repeating.take(30)} == set(centers)


def test_read_patch_start_and_bounds():
  volume = np.arange(6 * 7 * 8).reshape(6, 7, 8)  # zyx
  patch = inputs.read_patch(volume, center_xyz=(4, 3, 2), size_xyz=(4, 3, 2))
  # start = center - (size - 1) // 2 = (3, 2, 2) xyz.
  np.testing.assert_array_equal(patch[..., 0], volume[2:4, 2:5, 3:7])
  four_d = np.stack([volume, -volume])
  assert inputs.read_patch(four_d, (4, 3, 2), (4, 3, 2)).shape == (2, 3, 4, 2)
  with pytest.raises(inputs.InputError, match=r'coordinate \[7, 3, 2\].*outside'):
    inputs.read_patch(volume, center_xyz=(7, 3, 2), size_xyz=(4, 3, 2))
  with pytest.raises(inputs.InputError, match='outside'):
    inputs.read_patch(volume, center_xyz=(1, 3, 2), size_xyz=(5, 3, 2))


def test_object_mask_and_soft_labels():
  labels = np.zeros((3, 5, 3, 1), np.int64)
  labels[1, 1:4, 1] = 7
  labels[0, 0, 0] = 3
  mask = inputs.object_mask(tf.constant(labels)).numpy()
  np.testing.assert_array_equal(mask, labels == 7)
  soft = inputs.soften_labels(tf.constant(mask)).numpy()
  assert set(np.unique(soft)) == {np.float32(0.05), np.float32(0.95)}
  assert not inputs.object_mask(tf.zeros([3, 3, 3, 1], tf.int64)).numpy().any()


def test_normalizer_per_volume_map_with_byte_names():
  scale_map = inputs.parse_offset_scale_map(['a:10:2', 'b:0:4'])
  norm = inputs.Normalizer(scale_map, 128, 33, ['a', 'b', 'c'])
  x = tf.constant(138.0)
  assert float(norm(x, tf.constant(b'a'))) == pytest.approx(64.0)
  assert float(norm(x, tf.constant('b'))) == pytest.approx(34.5)
  assert float(norm(x, tf.constant('c'))) == pytest.approx(10 / 33)
  with pytest.raises(inputs.InputError, match="missing: \\['c'\\]"):
    inputs.Normalizer(scale_map, None, None, ['a', 'c'])
  with pytest.raises(inputs.InputError, match='volname:offset:scale'):
    inputs.parse_offset_scale_map(['a:1'])


def test_volume_source_rejects_mismatched_shapes(tmp_path):
  image, labels = training_fixtures.blob_volume((10, 12, 14), num_objects=5)
  data, label = training_fixtures.write_volumes(tmp_path, image[:, :, :-1], labels)
  with pytest.raises(inputs.InputError, match="volume 'blobs'.*shape"):
    inputs.VolumeSource(data, label)
  with pytest.raises(inputs.InputError, match='no image volume'):
    inputs.VolumeSource(data.replace('blobs:', 'other:'), label)
  with pytest.raises(inputs.InputError, match='does not exist'):
    inputs.VolumeSource(f'blobs:{tmp_path}/nope.h5:raw', label)


def test_pipeline_keeps_image_and_labels_aligned(tmp_path):
  _, labels = training_fixtures.blob_volume((24, 26, 28), num_objects=12, seed=3)
  # Each object gets its own intensity, so the image says which object a voxel is in.
  image = ((labels * 37) % 200 + 20).astype(np.uint8)
  data, label = training_fixtures.write_volumes(tmp_path, image, labels)
  rng = np.random.default_rng(0)
  centers = training_fixtures.object_centers(labels, (5, 6, 6), rng, 20)
  training_fixtures.write_coordinates(tmp_path / 'c.tfr', centers)
  size = (9, 9, 7)  # xyz, non-cubic; y and x may be permuted.
  config = inputs.PipelineConfig(
      train_coords=str(tmp_path / 'c.tfr'), data_volumes=data, label_volumes=label,
      image_size=size, label_size=size, image_mean=0, image_stddev=1,
      permutable_axes=(1, 2), reflectable_axes=(0, 1, 2), seed=1)
  changed = 0
  for example in inputs.example_dataset(config).take(40):
    img, soft = example['image'].numpy(), example['labels'].numpy()
    assert img.shape == soft.shape == (7, 9, 9, 1)
    np.testing.assert_array_equal(example['weights'].numpy(), 1)
    center_value = img[3, 4, 4, 0]
    np.testing.assert_array_equal(soft > 0.5, img == center_value)
    raw = inputs.read_patch(image, example['center'].numpy(), size).astype(np.float32)
    changed += not np.array_equal(raw, img)
  assert changed >= 20  # 1/32 of draws are the identity.
