"""When things go wrong: missing data, a foreign or unwritable workdir, NaN, signals, kill -9,
unreadable checkpoints. The CLI cases run ``alexnet_jax.main`` in a subprocess on mock data."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow_datasets as tfds
from support import checkpoint_steps, mock_inputs

from alexnet_jax.data import datasets, fashion_mnist_offline
from alexnet_jax.train import checkpoints, divergence, loop, preemption, run_dir
from experiments import fashion_mnist

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN_ON_MOCK_DATA = [sys.executable, os.path.join(REPO, "tests", "support", "mock_data_main.py")]
SMOKE = "--config=experiments/fashion_mnist.py:smoke"


@pytest.fixture
def mock_data():
  with mock_inputs.mock_data():
    from alexnet_jax.data import loader

    yield loader


def _checkpoint_steps(run_dir):
  return ocp.CheckpointManager(os.path.join(run_dir, "checkpoints")).all_steps()


def _params(run_dir, step):
  state = ocp.StandardCheckpointer().restore(os.path.join(run_dir, "checkpoints", str(step), "state"))
  return state["params"]


# --- 2. Missing data -------------------------------------------------------------------------------


@pytest.mark.slow
def test_missing_imagenet_says_which_files_go_where(tmp_path):
  data_dir = tmp_path / "tfds"
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "alexnet_jax.main",
      f"--workdir={tmp_path / 'run'}",
      "--config=experiments/imagenet2012.py:smoke",
      f"--config.data_dir={data_dir}",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  assert (
    f"put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (as downloaded, not extracted)"
    f" into {data_dir}/downloads/manual"
  ) in result.stderr
  assert "python -m alexnet_jax.data.prepare_store --config=experiments/imagenet2012.py" in result.stderr
  assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_missing_fashion_mnist_offline_says_which_package_to_install(tmp_path, monkeypatch):
  monkeypatch.setattr(fashion_mnist_offline, "has_source_files", lambda directory: False)  # no Debian copy

  def offline(self, *args, **kwargs):  # what TFDS raises after its retries, without the wait
    raise ConnectionError("Failed to establish a new connection: Network is unreachable")

  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
  config = fashion_mnist.get_config("smoke")
  config.data_dir = str(tmp_path)
  with pytest.raises(datasets.DatasetUnavailableError) as error:
    datasets.prepare(config)
  message = str(error.value)
  assert f"fashion_mnist is not prepared in {tmp_path}" in message
  assert "Network is unreachable" in message
  assert fashion_mnist_offline.INSTALL_HINT in message and "dataset-fashion-mnist" in message


# --- 3. Workdir safety -----------------------------------------------------------------------------


def test_a_workdir_of_another_config_is_refused_with_the_differences(tmp_path):
  config = json.loads(fashion_mnist.get_config("smoke").to_json_best_effort())
  run_dir.prepare(str(tmp_path), config, allow_config_change=False)
  run_dir.prepare(str(tmp_path), config, allow_config_change=False)  # the same config resumes
  changed = json.loads(json.dumps(config))
  changed["model"]["dropout_rate"], changed["batch_size"] = 0.3, 32
  with pytest.raises(run_dir.WorkdirError) as error:
    run_dir.prepare(str(tmp_path), changed, allow_config_change=False)
  message = str(error.value)
  assert "batch_size: 16 in the workdir, 32 now" in message
  assert f"model.dropout_rate: {config['model']['dropout_rate']} in the workdir, 0.3 now" in message
  assert "--allow_config_change" in message and "num_train_steps" not in message
  run_dir.prepare(str(tmp_path), changed, allow_config_change=True)  # allowed, and now recorded
  run_dir.prepare(str(tmp_path), changed, allow_config_change=False)


@pytest.mark.slow
def test_an_unwritable_workdir_fails_before_training(mock_data, tmp_path, monkeypatch):
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  from alexnet_jax.data import input_spec

  monkeypatch.setattr(input_spec, "build", lambda config: pytest.fail("data was loaded"))
  with pytest.raises(run_dir.WorkdirError, match="is not a writable directory"):
    loop.train_and_evaluate(fashion_mnist.get_config("smoke"), str(blocker / "run"))
  read_only = tmp_path / "read_only"
  read_only.mkdir()
  monkeypatch.setattr(os, "makedirs", lambda *a, **k: None)
  monkeypatch.setattr("tempfile.NamedTemporaryFile", _permission_denied)
  with pytest.raises(run_dir.WorkdirError, match="Permission denied"):
    loop.train_and_evaluate(fashion_mnist.get_config("smoke"), str(read_only))


def _permission_denied(*args, **kwargs):  # what a read-only directory gives (root ignores chmod)
  raise PermissionError(13, "Permission denied")


# --- 4. NaN or Inf loss ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(mock_data, tmp_path, monkeypatch):
  config = fashion_mnist.get_config("smoke")
  config.num_train_steps, config.checkpoint_every_steps, config.log_every_steps = 8, 2, 4
  config.eval_every_steps = 8  # no eval before the NaN: one compile less
  real_iterator = mock_data.train_batches

  def nan_at_step_5(spec, *, start_step=0, **kwargs):
    for step, batch in enumerate(real_iterator(spec, start_step=start_step, **kwargs), start=start_step + 1):
      if step == 5:
        batch = dict(batch, image=np.full(batch["image"].shape, np.inf, np.float32))  # uint8 holds no inf
      yield batch

  monkeypatch.setattr(mock_data, "train_batches", nan_at_step_5)
  with pytest.raises(
    divergence.DivergedError, match=r"loss is nan at step 5; .*last good checkpoint \(step 4\) is kept"
  ):
    loop.train_and_evaluate(config, str(tmp_path))
  assert _checkpoint_steps(str(tmp_path)) == [2, 4]
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(_params(str(tmp_path), 4)))


def test_non_finite_parameters_are_never_saved():
  good = {"w": np.ones(3, np.float32)}
  divergence.check_params_finite(3, good, last_saved_step=2)
  with pytest.raises(divergence.DivergedError, match=r"NaN or Inf after step 3.*step 2\) is kept"):
    divergence.check_params_finite(3, {"w": np.array([1.0, np.inf], np.float32)}, last_saved_step=2)


# --- 7. Unreadable checkpoints ---------------------------------------------------------------------


def _truncate_files(step_dir):
  for root, _, files in os.walk(step_dir):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 3)


def test_a_truncated_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
  directory = str(tmp_path / "checkpoints")
  checkpoint_steps.save_steps(directory, [1, 2, 3])
  _truncate_files(os.path.join(directory, "3"))
  checkpointer = checkpoints.Checkpointer(directory, keep=5, every_steps=1)
  state, meta = checkpointer.restore_latest({"w": jax.numpy.zeros(64, np.float32)})
  assert meta == {"input_position": 2} and float(state["w"][0]) == 2
  assert "Checkpoint at step 3" in caplog.text and "cannot be read" in caplog.text
  assert os.path.isdir(os.path.join(directory, checkpoints.UNREADABLE_DIR, "3"))
  checkpointer.save(3, {"w": np.full(64, 3.5, np.float32)}, {"input_position": 3})  # redo step 3
  checkpointer.close()
  assert checkpoints.Checkpointer(directory, keep=5, every_steps=1).latest_step() == 3


def test_a_half_written_checkpoint_is_never_a_step(tmp_path):
  directory = str(tmp_path / "checkpoints")
  checkpoint_steps.save_steps(directory, [1])
  os.makedirs(os.path.join(directory, "2.orbax-checkpoint-tmp-1234", "state"))  # killed mid-save
  checkpointer = checkpoints.Checkpointer(directory, keep=5, every_steps=1)
  _, meta = checkpointer.restore_latest({"w": jax.numpy.zeros(64, np.float32)})
  assert checkpointer.latest_step() == 1 and meta == {"input_position": 1}
  checkpointer.close()


def test_the_resume_record_round_trips_and_reads_older_records_with_defaults(tmp_path):
  record = checkpoints.ResumeRecord(
    input_position=6,
    eval_history=({"step": 3, "top1_error": 0.5}, {"step": 6, "top1_error": 0.25}),
    lr_drops=({"drop": 1, "step": 6},),
    wall_seconds=12.5,
    train_metrics={"loss": 0.75},
  )
  directory = str(tmp_path / "checkpoints")
  checkpointer = checkpoints.Checkpointer(directory, keep=5, every_steps=1)
  checkpointer.save(6, {"w": np.zeros(4, np.float32)}, record.to_dict())
  checkpointer.close()
  _, meta = checkpoints.Checkpointer(directory, keep=5, every_steps=1).restore_latest({"w": jax.numpy.zeros(4)})
  assert checkpoints.ResumeRecord.from_dict(meta, step=6) == record
  # A record saved before these fields existed: the input position is the step, the rest empty.
  older = checkpoints.ResumeRecord.from_dict({"wall_seconds": 3.0}, step=4)
  assert older == checkpoints.ResumeRecord(input_position=4, wall_seconds=3.0)
  assert older.to_dict() == {
    "input_position": 4, "eval_history": [], "lr_drops": [], "wall_seconds": 3.0, "train_metrics": {}
  }  # fmt: skip


def test_no_readable_checkpoint_over_an_existing_run_is_an_error_not_a_fresh_start(tmp_path):
  directory = str(tmp_path / "checkpoints")
  checkpoint_steps.save_steps(directory, [1, 2])
  for step in ("1", "2"):
    _truncate_files(os.path.join(directory, step))
  checkpointer = checkpoints.Checkpointer(directory, keep=5, every_steps=1)
  with pytest.raises(checkpoints.CheckpointError, match="none can be read.*Refusing to start"):
    checkpointer.restore_latest({"w": jax.numpy.zeros(64, np.float32)})
  assert ocp.CheckpointManager(directory).all_steps() == [1, 2]  # nothing was moved away


# --- 5. SIGTERM and SIGINT -------------------------------------------------------------------------


class Training:
  """A CLI training subprocess whose log lines are read as they come."""

  def __init__(self, *args):
    self.process = subprocess.Popen(
      [*MAIN_ON_MOCK_DATA, *args], cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    self.lines = []

  def wait_for(self, text, timeout=180):
    """Reads the log until a line contains ``text``; returns that line (None if it exits first)."""
    deadline = time.monotonic() + timeout
    for line in self.process.stderr:
      self.lines.append(line)
      if text in line:
        return line
      assert time.monotonic() < deadline, f"no {text!r} in time:\n{''.join(self.lines[-30:])}"
    return None

  def finish(self, timeout=120):
    _, rest = self.process.communicate(timeout=timeout)
    self.lines.append(rest)
    return self.process.returncode, "".join(self.lines)


@pytest.mark.slow
def test_sigterm_and_sigint_checkpoint_flush_and_resume(tmp_path):
  run_dir = str(tmp_path / "run")
  args = (
    f"--workdir={run_dir}",
    SMOKE,
    "--config.num_train_steps=10000",
    "--config.log_every_steps=1",
    "--config.checkpoint_every_steps=5000",
    "--config.eval_every_steps=5000",
  )
  first = Training(*args)
  assert first.wait_for("step 3/10000")
  first.process.send_signal(signal.SIGTERM)
  returncode, log = first.finish()
  assert returncode == preemption.EXIT_PREEMPTED, log[-3000:]
  assert "Traceback" not in log
  stopped_at = int(log.split("stopped by SIGTERM after saving a checkpoint at step ")[1].split(";")[0])
  assert _checkpoint_steps(run_dir) == [stopped_at] and stopped_at >= 3
  assert _logged_train_steps(run_dir) == set(range(1, stopped_at + 1))  # TensorBoard was flushed

  second = Training(*args)
  assert second.wait_for(f"from step {stopped_at},")
  assert second.wait_for(f"step {stopped_at + 1}/10000")
  second.process.send_signal(signal.SIGINT)
  returncode, log = second.finish()
  assert returncode == preemption.EXIT_PREEMPTED, log[-3000:]
  assert "stopped by SIGINT" in log and "Traceback" not in log
  assert max(_checkpoint_steps(run_dir)) > stopped_at


def _logged_train_steps(run_dir):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  steps = set()
  for name in os.listdir(run_dir):
    if name.startswith("events.out.tfevents"):
      for event in tf.compat.v1.train.summary_iterator(os.path.join(run_dir, name)):
        if any(value.tag == "train_loss" for value in event.summary.value):
          steps.add(event.step)
  return steps


# --- 6. kill -9 at random moments ------------------------------------------------------------------

KILL_RUN_STEPS = 16


@pytest.mark.slow
def test_kill_9_at_random_moments_resumes_to_the_uninterrupted_result(mock_data, tmp_path):
  overrides = {
    "num_train_steps": KILL_RUN_STEPS,
    "checkpoint_every_steps": 1,
    "keep_checkpoints": 2,
    "log_every_steps": 1,
    "eval_every_steps": KILL_RUN_STEPS,
  }
  config = fashion_mnist.get_config("smoke")
  config.update(overrides)
  loop.train_and_evaluate(config, str(tmp_path / "straight"))
  want = _params(str(tmp_path / "straight"), KILL_RUN_STEPS)

  run_dir = str(tmp_path / "killed")
  args = [f"--workdir={run_dir}", SMOKE, *(f"--config.{k}={v}" for k, v in overrides.items())]
  rng = random.Random(7)
  resumed_from, logs = [], []
  for _ in range(5):
    run = Training(*args)
    line = run.wait_for("Training on")
    assert line, "".join(run.lines[-30:])
    resumed_from.append(int(line.split(" from step ")[1].split(",")[0]))
    kill_step = resumed_from[-1] + rng.randint(1, 2)
    run.wait_for(f"step {kill_step}/")
    time.sleep(rng.uniform(0.0, 0.3))  # somewhere in that step's checkpoint save, or just after
    run.process.kill()
    logs.append(run.finish()[1])
  returncode, log = Training(*args).finish(timeout=300)
  assert returncode == 0, log[-3000:]
  assert not any("cannot be read" in text for text in [*logs, log])  # no partial checkpoint seen
  assert resumed_from[0] == 0 and resumed_from == sorted(resumed_from), resumed_from
  assert f"from step {KILL_RUN_STEPS}," not in log
  got = _params(run_dir, KILL_RUN_STEPS)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), want, got)
