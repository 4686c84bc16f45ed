"""The GPU host's one-command check (``yardsticks/gpu_check.py``) and the synthetic JPEGs it generates on every core."""

import json
import os
import statistics
import subprocess
import sys

import pytest

from alexnet_jax import utils
from alexnet_jax.yardsticks import gpu_check, synthetic_images

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_an_example_depends_only_on_its_stream_and_index():
  jpeg, label = synthetic_images.labelled_jpeg(3, 7)
  assert (jpeg, label) == synthetic_images.labelled_jpeg(3, 7)
  assert jpeg[:2] == b"\xff\xd8" and 0 <= label < synthetic_images.NUM_CLASSES
  assert jpeg != synthetic_images.labelled_jpeg(3, 8)[0] and jpeg != synthetic_images.labelled_jpeg(4, 7)[0]


def test_workers_are_one_per_core_with_enough_images_each():
  per_worker = synthetic_images.MIN_IMAGES_PER_WORKER
  assert synthetic_images.worker_count(per_worker - 1, cores=16) == 1
  assert synthetic_images.worker_count(3 * per_worker, cores=16) == 3
  assert synthetic_images.worker_count(20_000, cores=16) == 16


@pytest.mark.slow  # starts a pool of processes
def test_a_pool_yields_the_examples_one_process_makes_in_the_same_order():
  alone = list(synthetic_images.labelled_jpegs(1, 5, workers=1))
  assert list(synthetic_images.labelled_jpegs(1, 5, workers=2)) == alone


@pytest.mark.parametrize(
  ("cli", "step", "stream", "limited_by"),
  [(90.0, 100.0, 50.0, "step"), (40.0, 100.0, 50.0, "input"), (40.0, 100.0, 500.0, "contention")],
)
def test_the_verdict_names_what_limited_the_run(cli, step, stream, limited_by):
  verdict = gpu_check.verdict(cli, step, stream)
  assert verdict["limited_by"] == limited_by and verdict["input_bound"] == (limited_by == "input")
  assert verdict["meets_goal"] == (cli >= gpu_check.GOAL_CLI_OVER_STEP_ALONE * step)
  assert verdict["cli_over_step_alone"] == pytest.approx(cli / step, abs=1e-3)


def test_the_cli_runs_see_only_their_devices_and_keep_the_other_xla_flags():
  base = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4 --xla_dump_to=/tmp/x", "PATH": "/bin"}
  env = gpu_check.device_env(base, 2)
  assert env["XLA_FLAGS"].split() == ["--xla_dump_to=/tmp/x", "--xla_force_host_platform_device_count=2"]
  assert env["CUDA_VISIBLE_DEVICES"] == "0,1" and env["PATH"] == "/bin"
  assert base["XLA_FLAGS"].startswith("--xla_force_host_platform_device_count=4")  # the caller's is kept
  assert gpu_check.device_env({"CUDA_VISIBLE_DEVICES": "3,5,6"}, 2)["CUDA_VISIBLE_DEVICES"] == "3,5"


def test_this_process_reads_the_config_the_cli_is_given(tmp_path):
  fields = gpu_check.settings(gpu_check.FULL, str(tmp_path))
  config = gpu_check.load_config(gpu_check.FULL, fields)
  assert (config.model.dtype, config.batch_size, config.data_dir) == ("bfloat16", 512, str(tmp_path))
  assert config.model.input_size == 227 and config.dataset == "imagenet2012"
  assert config.eval_every_steps == config.num_train_steps == gpu_check.FULL.cli_steps


@pytest.mark.slow
def test_tiny_check_runs_end_to_end_and_its_numbers_agree(tmp_path):
  """On two (forced) CPU devices, so the two-tower run is made too."""
  out = tmp_path / "out"
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  command = [sys.executable, "-m", "alexnet_jax.yardsticks.gpu_check", f"--out={out}", "--tiny"]
  result = subprocess.run(
    [*command, f"--data_dir={tmp_path / 'data'}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
  )
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads((out / gpu_check.RESULT_FILE).read_text())
  assert (report["tiny"], report["dtype"], report["device_count"], report["backend"]) == (True, "bfloat16", 2, "cpu")
  assert report["cores"] == utils.usable_cores() and report["jax_version"]
  cli, step, stream = report["cli"], report["step_alone"], report["stream_alone"]
  assert min(cli["windows"]) > 0 and len(cli["windows"]) == cli["steps"] // cli["log_every_steps"]
  assert cli["images_per_second"] == pytest.approx(statistics.median(cli["windows"][1:]), rel=1e-3)
  assert step["images_per_second"] > 0 and stream["images_per_second"] > 0 and stream["cpu_us_per_image"] > 0
  expected = gpu_check.verdict(cli["images_per_second"], step["images_per_second"], stream["images_per_second"])
  assert {key: report[key] for key in expected} == expected
  assert cli["mfu"] is None and report["peak_tflops"] is None  # a CPU has no peak in the table
  towers = report["two_towers"]
  assert towers["devices"] == 2 and towers["images_per_second"] > 0
  assert towers["over_one_device"] == pytest.approx(towers["images_per_second"] / cli["images_per_second"], rel=1e-2)
  assert (out / "cli_one_device.log").is_file() and (out / "cli_two_towers.log").is_file()
  assert report["synthetic"]["train_images"] == gpu_check.TINY.train_images
