"""Workers growing several blocks at once through one batched engine (--subvolumes_per_worker)."""

from __future__ import annotations

from google.protobuf import text_format
import numpy as np
import pytest

from ffn.blockwise import scheduling
from ffn.blockwise import workers
from ffn.inference import inference_pb2

import blockwise_fixtures


@pytest.fixture(scope='module')
def volume(tmp_path_factory):
  """(directory, image spec) of the synthetic volume."""
  root = tmp_path_factory.mktemp('subvolumes')
  spec, _ = blockwise_fixtures.write_volume(root)
  return root, spec


def _run(root, spec, name: str, monkeypatch, **run_args) -> tuple[np.ndarray, list[int]]:
  """(stitched result, FOVs of each model call) of a blockwise run of the synthetic volume."""
  log = root / f'{name}.batches'
  log.write_text('')
  monkeypatch.setenv(blockwise_fixtures.BATCH_LOG_ENV, str(log))
  plan = blockwise_fixtures.make_plan(spec, root / name, f'{root}/{name}.h5:seg',
                                      model_factory='blockwise_fixtures.BatchLoggingModel')
  scheduling.run(plan, progress=False, **run_args)
  batches = [int(line) for line in log.read_text().split()]
  return blockwise_fixtures.read_h5(f'{root}/{name}.h5:seg'), batches


def test_several_subvolumes_per_worker_give_the_one_at_a_time_result(volume, monkeypatch):
  root, spec = volume
  single, single_batches = _run(root, spec, 'k1', monkeypatch, num_workers=1)
  assert set(single_batches) == {1}
  for k in (2, 4):
    batched, batches = _run(root, spec, f'k{k}', monkeypatch, num_workers=1,
                            subvolumes_per_worker=k)
    # The numpy model's logits do not depend on the batch: the same result, voxel for voxel.
    np.testing.assert_array_equal(batched, single)
    assert max(batches) == k and sum(batches) == sum(single_batches)


def test_two_workers_of_two_subvolumes_give_the_same_result(volume, monkeypatch):
  root, spec = volume
  single, _ = _run(root, spec, 'w1', monkeypatch, num_workers=1)
  batched, batches = _run(root, spec, 'w2k2', monkeypatch, num_workers=2,
                          subvolumes_per_worker=2)
  np.testing.assert_array_equal(batched, single)
  assert max(batches) == 2


def _request(**fields) -> inference_pb2.InferenceRequest:
  return text_format.Parse(' '.join(f'{k}: {v}' for k, v in fields.items()),
                           inference_pb2.InferenceRequest())


def test_the_batch_is_one_fov_per_subvolume_unless_the_request_sets_it():
  assert workers.batched_request(_request(), 4).batch_size == 4
  assert workers.batched_request(_request(), 4).concurrent_requests == 4
  assert workers.batched_request(_request(batch_size=16), 4).batch_size == 16
  assert workers.batched_request(_request(batch_size=3), 1).concurrent_requests == 1


def test_the_default_is_the_requests_concurrent_requests():
  assert scheduling.subvolumes_per_worker(0, _request(concurrent_requests=3)) == 3
  assert scheduling.subvolumes_per_worker(0, _request()) == 1
  assert scheduling.subvolumes_per_worker(2, _request(concurrent_requests=3)) == 2


def test_the_launch_template_gets_the_subvolume_count():
  worker = workers.LaunchedWorker('srun -n1 {command}', 'plan.json', 'inference', 2, 4)
  command = worker.command('ctx')
  assert command.startswith('srun -n1 ') and '--subvolumes 4' in command


def test_several_objects_at_once_cannot_be_batched_across_subvolumes(volume):
  root, spec = volume
  plan = blockwise_fixtures.make_plan(spec, root / 'objects', f'{root}/objects.h5:seg',
                                      concurrent_objects=2, engine='OPENVINO')
  with pytest.raises(scheduling.errors.FFNError, match='concurrent_objects'):
    scheduling.run(plan, progress=False, subvolumes_per_worker=2)
