"""The real TensorBoard server, on loopback over a smoke run's workdir, serves what the run wrote."""

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
from support import mock_inputs

from alexnet_jax.train import loop, summaries
from experiments import fashion_mnist

STARTUP_SECONDS = 90


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _get_json(url):
  with urllib.request.urlopen(url, timeout=10) as response:
    return json.load(response)


def _wait_for_tags(base, plugin, expected, server):
  """Polls the plugin's tag list until ``expected`` tags appear (the server loads lazily)."""
  deadline = time.monotonic() + STARTUP_SECONDS
  while time.monotonic() < deadline:
    if server.poll() is not None:
      pytest.fail(f"tensorboard exited: {server.stderr.read()[-2000:]}")
    try:
      tags = _get_json(f"{base}/data/plugin/{plugin}/tags")
      if tags and expected <= set(next(iter(tags.values()))):
        return tags
    except OSError:
      pass
    time.sleep(0.5)
  pytest.fail(f"tensorboard did not serve {plugin} tags {expected} within {STARTUP_SECONDS} s")


@pytest.fixture
def smoke_workdir(tmp_path):
  config = fashion_mnist.get_config("smoke")
  with mock_inputs.mock_data():
    summary = loop.train_and_evaluate(config, str(tmp_path))
  return str(tmp_path), summary


@pytest.mark.slow
def test_tensorboard_serves_the_runs_scalars_and_kernel_images(smoke_workdir):
  workdir, summary = smoke_workdir
  port = _free_port()
  server = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "tensorboard.main",
      "--logdir",
      workdir,
      "--port",
      str(port),
      "--host",
      "127.0.0.1",
      "--reload_interval",
      "1",
    ],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )
  base = f"http://127.0.0.1:{port}"
  try:
    scalar_tags = _wait_for_tags(base, "scalars", {"eval_top1_error", "train_loss"}, server)
    (run,) = scalar_tags
    assert {
      "train_top1_error",
      "train_top5_error",
      "train_learning_rate",
      "train_images_per_second",
      "eval_loss",
      "eval_top5_error",
    } <= set(scalar_tags[run])
    query = urllib.parse.urlencode({"run": run, "tag": "eval_top1_error"})
    points = _get_json(f"{base}/data/plugin/scalars/scalars?{query}")  # [[wall_time, step, value]]
    assert [step for _, step, _ in points] == [summary["step"]]
    assert points[-1][2] == pytest.approx(summary["eval_top1_error"])
    query = urllib.parse.urlencode({"run": run, "tag": "train_loss"})
    steps = [step for _, step, _ in _get_json(f"{base}/data/plugin/scalars/scalars?{query}")]
    assert steps == list(range(2, summary["step"] + 1, 2))

    image_tags = _wait_for_tags(base, "images", {"conv1_kernels/tower1", "conv1_kernels/tower2"}, server)
    assert run in image_tags
  finally:
    server.terminate()
    try:
      server.wait(timeout=10)
    except subprocess.TimeoutExpired:
      server.kill()
      server.wait()


def test_kernel_grid_lays_out_each_kernel_stretched_to_unit_range():
  rng = np.random.default_rng(0)
  kernels = rng.normal(size=(11, 11, 3, 20)).astype(np.float32)
  grid = summaries.kernel_grid(kernels, columns=8, pad=1, scale=1)
  assert grid.shape == (3 * 12 + 1, 8 * 12 + 1, 3)
  assert grid.min() >= 0 and grid.max() <= 1
  ninth = grid[1 + 12 : 1 + 12 + 11, 1 + 12 : 1 + 12 + 11]  # row 1, column 1 -> kernel 9
  k = kernels[..., 9]
  np.testing.assert_allclose(ninth, (k - k.min()) / (k.max() - k.min()), rtol=1e-6)
  images = summaries.conv1_kernel_images(np.stack([kernels, kernels]))
  assert set(images) == {"conv1_kernels/tower1", "conv1_kernels/tower2"}
