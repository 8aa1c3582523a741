"""Tests for ffn.analysis.viewer and view_segmentation.py, in a real headless browser.

The browser test needs Debian's `chromium` and `chromium-driver` (for
/usr/bin/chromedriver) and the `selenium` pip package; it is skipped, saying
which is missing, where they are not installed.
"""

from __future__ import annotations

import io
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

import h5py
import numpy as np
import pytest

from ffn.analysis import viewer

CHROMIUM_FLAGS = ('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                  '--no-first-run', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync', '--window-size=1000,700')


def _browser_or_skip(user_data_dir):
  """A selenium Chrome driver on the local chromium, or a skip naming what is missing."""
  try:
    from selenium import webdriver  # pylint: disable=g-import-not-at-top
    from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top
  except ImportError:
    pytest.skip('browser test skipped: the selenium package is not installed '
                '(pip install selenium)')
  binary = next((shutil.which(name) for name in ('chromium', 'chromium-browser')
                 if shutil.which(name)), None)
  if binary is None:
    pytest.skip('browser test skipped: no chromium binary on PATH (apt-get install chromium)')
  driver_path = shutil.which('chromedriver')
  if driver_path is None:
    pytest.skip('browser test skipped: no chromedriver on PATH (apt-get install chromium-driver)')
  options = webdriver.ChromeOptions()
  options.binary_location = binary
  for flag in CHROMIUM_FLAGS:
    options.add_argument(flag)
  options.add_argument(f'--user-data-dir={user_data_dir}')
  return webdriver.Chrome(options=options, service=Service(executable_path=driver_path))


def _toy_volumes(tmp_path):
  """An image, a result subvolume at xyz corner (0, 0, 0) and groundtruth, zyx 12x48x64."""
  from ffn.inference.io import results  # pylint: disable=g-import-not-at-top
  shape = (12, 48, 64)
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, shape, dtype=np.uint8)
  gt = np.zeros(shape, dtype=np.int64)
  gt[:, :24, :32], gt[:, :24, 32:], gt[:, 24:, :32], gt[:, 24:, 32:] = 1, 2, 3, 4
  with h5py.File(tmp_path / 'image.h5', 'w') as f:
    f['raw'] = image
  with h5py.File(tmp_path / 'gt.h5', 'w') as f:
    f['stack'] = gt
  seg = (gt > 2).astype(np.uint8) + 1
  results.save_subvolume(seg, {}, results.segmentation_path(str(tmp_path / 'res'), (0, 0, 0)))
  return tmp_path


def _read_url(proc: subprocess.Popen, timeout: float = 60) -> str:
  """Reads the script's stdout until it prints the viewer URL."""
  lines: queue.Queue = queue.Queue()
  threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True).start()
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    try:
      line = lines.get(timeout=1)
    except queue.Empty:
      if proc.poll() is not None:
        break
      continue
    match = re.search(r'(http://\S+)', line)
    if match:
      return match.group(1)
  proc.kill()
  raise AssertionError(f'no viewer URL printed; stderr: {proc.stderr.read()}')


def _panel_variance(driver) -> tuple[float, int]:
  """Pixel variance and colour count in the middle of a screenshot (where the data is drawn)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  shot = np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert('RGB'))
  h, w = shot.shape[:2]
  middle = shot[h * 3 // 8:h * 5 // 8, w * 3 // 8:w * 5 // 8].reshape(-1, 3)
  return float(middle.astype(np.float64).var()), len(np.unique(middle, axis=0))


def test_script_viewer_in_headless_browser(tmp_path, repo_root):
  data = _toy_volumes(tmp_path)
  driver = _browser_or_skip(tmp_path / 'chrome-profile')
  proc = subprocess.Popen(
      [sys.executable, str(repo_root / 'view_segmentation.py'),
       '--image', f'{data}/image.h5:raw', '--segmentation_dir', str(data / 'res'),
       '--corner', '0,0,0', '--groundtruth', f'{data}/gt.h5:stack', '--voxel_size', '8,8,30',
       '--timeout_secs', '90'],
      cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    url = _read_url(proc)
    assert url.startswith('http://127.0.0.1:')
    driver.get(url)
    from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
    from selenium.webdriver.support.ui import WebDriverWait  # pylint: disable=g-import-not-at-top
    label_css = '.neuroglancer-layer-item-label'
    WebDriverWait(driver, 60).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, label_css)) >= 3)
    names = [e.text for e in driver.find_elements(By.CSS_SELECTOR, label_css)]
    assert names == ['image', 'segmentation', 'groundtruth']
    # The data arrives chunk by chunk; wait for the middle of the panel to be drawn.
    deadline = time.monotonic() + 60
    variance, colours = _panel_variance(driver)
    while (variance < 100 or colours < 50) and time.monotonic() < deadline:
      time.sleep(1)
      variance, colours = _panel_variance(driver)
    driver.save_screenshot(str(tmp_path / 'viewer.png'))
    assert variance >= 100 and colours >= 50, (
        f'screenshot looks blank: variance {variance}, {colours} colours '
        f'(see {tmp_path / "viewer.png"})')
  finally:
    driver.quit()
    proc.kill()
    proc.wait()


def test_served_client_is_local(tmp_path):
  data = _toy_volumes(tmp_path)
  with h5py.File(data / 'gt.h5') as f:
    v = viewer.build_viewer([viewer.Layer('groundtruth', f['stack'])], voxel_size_xyz=(4, 4, 40))
    url = v.get_viewer_url()
    assert url.startswith('http://127.0.0.1:')
    with urllib.request.urlopen(url, timeout=30) as response:
      page = response.read().decode()
    # The page loads its scripts from this server, not from the internet.
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', page)
    assert scripts and all('://' not in s for s in scripts)
    with urllib.request.urlopen(url + scripts[0], timeout=30) as response:
      assert len(response.read()) > 1000
    state = v.state
    assert [layer.name for layer in state.layers] == ['groundtruth']
    assert list(state.dimensions.scales) == [4e-9, 4e-9, 4e-8]
    assert [float(p) for p in state.position] == [32.0, 24.0, 6.0]


def test_build_viewer_rejects_bad_layers():
  labels = np.zeros((2, 3, 4), np.uint32)
  with pytest.raises(ValueError, match='at least one layer'):
    viewer.build_viewer([])
  with pytest.raises(ValueError, match='unique'):
    viewer.build_viewer([viewer.Layer('a', labels), viewer.Layer('a', labels)])
  with pytest.raises(ValueError, match='kind'):
    viewer.build_viewer([viewer.Layer('a', labels, 'mesh')])
  with pytest.raises(ValueError, match='expected integers'):
    viewer.build_viewer([viewer.Layer('a', labels.astype(np.float32))])
  with pytest.raises(ValueError, match='3-D'):
    viewer.build_viewer([viewer.Layer('a', labels[0])])


def test_int64_labels_are_served_as_uint64():
  labels = np.arange(24, dtype=np.int64).reshape(2, 3, 4)
  view = viewer._AsUint64(labels)
  assert view.dtype == np.uint64 and view.shape == (2, 3, 4)
  np.testing.assert_array_equal(view[1, :, 1:3], labels[1, :, 1:3])


def test_script_bad_input(repo_root, tmp_path):
  proc = subprocess.run([sys.executable, str(repo_root / 'view_segmentation.py'),
                         '--image', f'{tmp_path}/missing.h5:raw', '--timeout_secs', '1'],
                        capture_output=True, text=True, cwd=repo_root, timeout=60)
  assert proc.returncode == 1 and 'does not exist' in proc.stderr
  assert os.listdir(tmp_path) == []


def test_view_starts_on_the_result_with_groundtruth_hidden(tmp_path):
  image = np.zeros((12, 48, 64), np.uint8)
  with h5py.File(tmp_path / 'gt.h5', 'w') as f:
    f['stack'] = np.ones((12, 48, 64), np.uint32)
    f['stack'].attrs['resolution'] = [30.0, 8.0, 8.0]  # CREMI: zyx nm.
  from ffn.utils import volumes  # pylint: disable=g-import-not-at-top
  groundtruth = volumes.open_volume(f'{tmp_path}/gt.h5:stack')
  layers = [viewer.Layer('image', image, 'image'),
            viewer.Layer('segmentation', np.ones((4, 8, 10), np.uint32), offset_xyz=(20, 30, 4)),
            viewer.Layer('groundtruth', groundtruth, visible=False)]
  voxel_size, why = viewer.choose_voxel_size(layers, None, default_xyz=(10, 10, 10))
  assert voxel_size == (8.0, 8.0, 30.0) and 'groundtruth' in why
  assert viewer.choose_voxel_size(layers, (4, 4, 4), (10, 10, 10))[0] == (4.0, 4.0, 4.0)
  assert viewer.choose_voxel_size(layers[:2], None, (10, 10, 10)) == (
      (10.0, 10.0, 10.0), 'the default (no volume records one)')

  v = viewer.build_viewer(layers, voxel_size_xyz=voxel_size)
  state = v.state
  # Centred on the segmentation's box (x 20..30, y 30..38, z 4..8), not on the image.
  assert [float(p) for p in state.position] == [25.0, 34.0, 6.0]
  # Its larger xy side (10 voxels) spans FIT_PIXELS screen pixels.
  assert state.cross_section_scale == pytest.approx(10 / viewer.FIT_PIXELS)
  assert state.projection_scale == pytest.approx(15.0)
  assert [layer.visible for layer in state.layers] == [True, True, False]
  assert list(state.dimensions.names) == ['x', 'y', 'z']
  assert list(state.dimensions.scales) == pytest.approx([8e-9, 8e-9, 3e-8])
  assert list(state.dimensions.units) == ['m', 'm', 'm']

  focused = viewer.initial_view(layers, focus='image')
  assert focused.position_xyz == (32.0, 24.0, 6.0)
  with pytest.raises(ValueError, match="focus layer 'mesh'"):
    viewer.initial_view(layers, focus='mesh')


def test_script_takes_the_voxel_size_from_metadata(repo_root, tmp_path):
  data = _toy_volumes(tmp_path)
  with h5py.File(data / 'gt.h5', 'a') as f:
    f['stack'].attrs['resolution'] = [40.0, 4.0, 4.0]

  def logged_voxel_size(*args):
    proc = subprocess.run([sys.executable, str(repo_root / 'view_segmentation.py'),
                           '--image', f'{data}/image.h5:raw', '--timeout_secs', '0', *args],
                          capture_output=True, text=True, cwd=repo_root, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return re.search(r'voxel size (.*)', proc.stderr).group(1)
  assert logged_voxel_size('--groundtruth', f'{data}/gt.h5:stack') == (
      "(4.0, 4.0, 40.0) nm (xyz), from the groundtruth volume's metadata")
  assert logged_voxel_size() == '(10.0, 10.0, 10.0) nm (xyz), the default (no volume records one)'
  assert logged_voxel_size('--groundtruth', f'{data}/gt.h5:stack', '--voxel_size', '8,8,8') == (
      '(8.0, 8.0, 8.0) nm (xyz), as given')
