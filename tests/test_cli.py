"""``alexnet_jax.main`` as a user runs it: a subprocess with --config overrides, on mock data."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # every test starts the CLI

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN_ON_MOCK_DATA = os.path.join(REPO, "tests", "support", "mock_data_main.py")
SMOKE = "--config=experiments/fashion_mnist.py:smoke"


def run_main(*args, timeout=300):
  return subprocess.run(
    [sys.executable, MAIN_ON_MOCK_DATA, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
  )


def test_cli_trains_with_overrides_and_a_finished_run_exits_cleanly(tmp_path):
  workdir = str(tmp_path / "run")
  # Overrides that leave the compiled programs as the other smoke tests have them (fast).
  args = (f"--workdir={workdir}", SMOKE, "--config.log_every_steps=1", "--config.keep_checkpoints=1")
  first = run_main(*args)
  assert first.returncode == 0, first.stderr[-3000:]
  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  assert summary["step"] == 4
  assert summary["config_overrides"] == {"log_every_steps": 1, "keep_checkpoints": 1}
  assert summary["config"]["keep_checkpoints"] == 1
  assert os.listdir(os.path.join(workdir, "checkpoints")) == ["4"]
  assert sum("step 1/4" in line or "step 2/4" in line for line in first.stderr.splitlines()) == 2
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(workdir))

  again = run_main(*args)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "already finished at step 4" in again.stderr
  assert "Training on" not in again.stderr


@pytest.mark.parametrize(
  "override,expected",
  [
    ("--config.optimizer.name=adam", "config.optimizer.name='adam' is not allowed: expected one of"),
    ("--config.model.widht=0.5", "the config has no field 'widht'; Did you mean \"width\""),
    (
      "--config.model.zzz=1",
      "the config has no field 'zzz'; config.model has: adaptive_pool, channels, ",
    ),
    ("--config.model.lrn_size=4", "config.model.lrn_size=4 is not allowed: expected a positive odd integer"),
    ("--config.batch_size=many", "flag --config.batch_size=many: invalid literal for int()"),
  ],
)
def test_cli_bad_config_gives_one_clear_error(tmp_path, override, expected):
  result = run_main(f"--workdir={tmp_path}", SMOKE, override)
  assert result.returncode == 1
  assert expected in result.stderr
  assert "Traceback" not in result.stderr
  assert not os.path.exists(tmp_path / "checkpoints")


def test_cli_unknown_config_variant_is_a_clean_error(tmp_path):
  result = run_main(f"--workdir={tmp_path}", "--config=experiments/fashion_mnist.py:huge")
  assert result.returncode == 1
  assert "unknown config variant 'huge'; known: 'smoke'" in result.stderr
  assert "Traceback" not in result.stderr


def test_cli_missing_dataset_says_what_to_install(tmp_path):
  """The real main, no mock data: an ImageNet with no tars in manual_dir is a user error."""
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "alexnet_jax.main",
      f"--workdir={tmp_path / 'run'}",
      "--config=experiments/imagenet2012.py:smoke",
      f"--config.data_dir={tmp_path / 'tfds'}",
      f"--config.manual_dir={tmp_path / 'manual'}",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 1
  assert "ILSVRC2012_img_train.tar" in result.stderr and str(tmp_path / "manual") in result.stderr
  assert "Traceback" not in result.stderr
