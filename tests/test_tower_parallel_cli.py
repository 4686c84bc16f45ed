"""The CLI's smoke run gives the same metrics with the towers on two devices as on one."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # every test trains through the CLI

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN_ON_MOCK_DATA = os.path.join(REPO, "tests", "support", "mock_data_main.py")
METRICS = ("eval_top1_error", "eval_top5_error", "eval_loss", "train_loss", "train_top1_error")


def _smoke_summary(workdir, devices, *overrides):
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  result = subprocess.run(
    [
      sys.executable,
      MAIN_ON_MOCK_DATA,
      f"--workdir={workdir}",
      "--config=experiments/fashion_mnist.py:smoke",
      "--config.num_train_steps=3",
      *overrides,
    ],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(workdir, "summary.json")) as f:
    return json.load(f)


@pytest.fixture(scope="module")
def one_device_summary(tmp_path_factory):
  return _smoke_summary(tmp_path_factory.mktemp("one"), 1)


@pytest.mark.parametrize("parallelism", ["towers", "weird_trick"])
def test_two_device_smoke_run_matches_one_device(tmp_path, parallelism, one_device_summary):
  one = one_device_summary
  two = _smoke_summary(tmp_path / "two", 2, "--config.tower_parallel=2", f"--config.parallelism={parallelism}")
  assert two["devices"] == 2 and one["devices"] == 1
  for metric in METRICS:
    assert two[metric] == pytest.approx(one[metric], abs=1e-4), metric
