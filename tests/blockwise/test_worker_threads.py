"""Each blockwise inference worker's engine gets its share of the CPU threads."""

from __future__ import annotations

import subprocess
import sys

from ffn.blockwise import scheduling
from ffn.blockwise import workers
from ffn.utils import hardware


def test_local_workers_share_the_usable_cpus(monkeypatch):
  monkeypatch.setattr(hardware, 'usable_cpus', lambda: 16)
  assert scheduling.worker_threads(0, 4, None) == 4
  assert scheduling.worker_threads(0, 3, None) == 5
  assert scheduling.worker_threads(0, 32, None) == 1
  assert scheduling.worker_threads(2, 4, None) == 2  # The flag wins.
  # Launched workers use what their launcher gives them, unless told.
  assert scheduling.worker_threads(0, 4, 'srun {command}') is None
  assert scheduling.worker_threads(8, 4, 'srun {command}') == 8


def test_the_launch_template_gets_the_thread_count():
  worker = workers.LaunchedWorker('srun --cpus-per-task={threads} {command}', '/p/plan.json',
                                  'inference', threads=3)
  command = worker.command('ctx')
  assert command.startswith('srun --cpus-per-task=3 ')
  assert command.endswith('--threads 3')
  plain = workers.LaunchedWorker('srun {command}', '/p/plan.json', 'inference').command('ctx')
  assert '--threads' not in plain


def test_tensorflow_threads_are_set_before_it_loads():
  code = ('import sys\n'
          'from ffn.inference.engines import tensorflow_engine as e\n'
          'e.limit_threads(1)\n'
          'assert "tensorflow" not in sys.modules\n'
          'import os, tensorflow as tf\n'
          'tf.matmul(tf.ones((64, 64)), tf.ones((64, 64))).numpy()\n'
          'names = [open(f"/proc/self/task/{t}/comm").read().strip()\n'
          '         for t in os.listdir("/proc/self/task")]\n'
          'print(names.count("tf_Compute"))\n')
  proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.split()[-1] == '1'


