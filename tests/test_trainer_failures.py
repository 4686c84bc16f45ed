"""The trainer under hostile use: two trainers in one workdir, kill -9, flipped bits in a
checkpoint, signals to a sweep or before training starts, absurd values, broken data and workdir
files, a full disk. Each case ends in one ``error:`` line (exit 1) or exit 75, and a failed start
leaves the workdir as it found it. The CLI cases run the real ``alexnet_jax.main`` on a tiny real
TFDS Fashion-MNIST (the mock data ignores split names) or ``tests/support/mock_data_main.py``.
"""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import flax
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from support import checkpoint_steps, idx_files, mock_inputs

from alexnet_jax.data import datasets, fashion_mnist_offline
from alexnet_jax.sweeps import report, runner
from alexnet_jax.train import checkpoints, divergence, loop, preemption, run_dir
from experiments import fashion_mnist

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN_ON_MOCK_DATA = os.path.join(REPO, "tests", "support", "mock_data_main.py")
SMOKE = "--config=experiments/fashion_mnist.py:smoke"
NUM_TRAIN, NUM_TEST = 64, 32  # a :smoke config (batch 16) trains 4 steps per epoch


def run_main(*args, mock=False, timeout=300):
  main = [MAIN_ON_MOCK_DATA] if mock else ["-m", "alexnet_jax.main"]
  return subprocess.run([sys.executable, *main, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def error_lines(stderr):
  return [line for line in stderr.splitlines() if line.startswith("error:")]


def listing(directory):
  return sorted(os.listdir(directory)) if os.path.isdir(directory) else None


@pytest.fixture(scope="module")
def tiny_tfds(tmp_path_factory):
  """A real prepared TFDS fashion_mnist of 64 train and 32 test random images."""
  source = tmp_path_factory.mktemp("idx")
  rng = np.random.default_rng(0)
  for split, count in (("train", NUM_TRAIN), ("test", NUM_TEST)):
    images_file, labels_file = fashion_mnist_offline.SPLIT_FILES[split]
    idx_files.write_idx(source / images_file, rng.integers(0, 256, (count, 28, 28)))
    idx_files.write_idx(source / labels_file, np.arange(count) % 10)
  data_dir = tmp_path_factory.mktemp("tfds")
  fashion_mnist_offline.prepare_fashion_mnist(str(data_dir), str(source))
  return str(data_dir)


def tiny_config(data_dir, **changes):
  config = fashion_mnist.get_config("smoke")
  config.data_dir = data_dir
  config.update(changes)
  return config


@pytest.fixture
def mock_loader():
  with mock_inputs.mock_data():
    from alexnet_jax.data import loader

    yield loader


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  """A finished 4-step :smoke run on mock data (checkpoints at steps 2 and 4) and its summary."""
  workdir = str(tmp_path_factory.mktemp("finished") / "run")
  with mock_inputs.mock_data():
    summary = loop.train_and_evaluate(fashion_mnist.get_config("smoke"), workdir)
  return workdir, summary


def copy_of(run, tmp_path):
  return shutil.copytree(run, tmp_path / "run")


# --- 1. One trainer per workdir ----------------------------------------------------------------


@pytest.mark.slow
def test_a_second_trainer_is_refused_with_who_holds_the_workdir(tmp_path):
  workdir = tmp_path / "run"
  with run_dir.TrainerLock(str(workdir)):
    before = listing(workdir)
    result = run_main(f"--workdir={workdir}", SMOKE, mock=True)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr)
    holder = f"(host {socket.gethostname()}, PID {os.getpid()}, since "
    assert line.startswith(f"error: another trainer is running in --workdir={workdir} {holder}")
    assert listing(workdir) == before == [run_dir.LOCK_FILE]
  assert not workdir.exists()  # the lock created the workdir and nothing else was written: removed again


HOLD_THE_LOCK = "import sys, time; from alexnet_jax.train import run_dir; lock = run_dir.TrainerLock(sys.argv[1]).__enter__(); print('locked', flush=True); time.sleep(300)"  # noqa: E501


@pytest.mark.slow
def test_kill_9_leaves_no_stale_lock(tmp_path):
  holder = subprocess.Popen(
    [sys.executable, "-c", HOLD_THE_LOCK, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True
  )
  assert holder.stdout.readline().strip() == "locked"
  with pytest.raises(run_dir.WorkdirError, match=f"host {socket.gethostname()}, PID {holder.pid}, since"):
    with run_dir.TrainerLock(str(tmp_path)):
      pass
  holder.kill()
  holder.wait()
  assert os.path.exists(tmp_path / run_dir.LOCK_FILE)  # the file stays, but the kernel released the lock
  with run_dir.TrainerLock(str(tmp_path)) as lock:
    with open(lock.path) as f:
      assert json.load(f)["pid"] == os.getpid()
  assert listing(tmp_path) == []


# --- 2. Checkpoint integrity -------------------------------------------------------------------


def _flip_a_bit(step_dir: str) -> str:
  """Flips one bit in the middle of the checkpoint's largest data file; returns that file's name."""
  data_dir = os.path.join(step_dir, "state", "ocdbt.process_0", "d")
  largest = max(os.listdir(data_dir), key=lambda name: os.path.getsize(os.path.join(data_dir, name)))
  with open(os.path.join(data_dir, largest), "r+b") as f:
    f.seek(os.path.getsize(f.name) // 2)
    byte = f.read(1)[0]
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte ^ 1]))
  return largest


@pytest.mark.slow
def test_a_flipped_bit_fails_the_checksums_and_the_previous_checkpoint_is_restored(tmp_path, caplog):
  directory = str(tmp_path / "checkpoints")
  checkpoint_steps.save_steps(directory, [1, 2, 3])
  step_dir = os.path.join(directory, "3")
  check = subprocess.run(["sha256sum", "--quiet", "-c", checkpoints.CHECKSUMS_FILE], cwd=step_dir, capture_output=True)
  assert check.returncode == 0, check  # the checksum file is sha256sum's format
  largest = _flip_a_bit(step_dir)
  checkpointer = checkpoints.Checkpointer(directory, keep=5, every_steps=1)
  state, meta = checkpointer.restore_latest({"w": jax.numpy.zeros(64, np.float32)})
  checkpointer.close()
  assert meta == {"input_position": 2} and float(state["w"][0]) == 2
  assert f"step 3 in {directory} cannot be read (ChecksumError: checksum mismatch: " in caplog.text
  assert f"state/ocdbt.process_0/d/{largest} (changed)" in caplog.text
  assert os.path.isdir(os.path.join(directory, checkpoints.UNREADABLE_DIR, "3"))


def test_deleting_a_checksum_file_does_not_make_a_damaged_checkpoint_readable(tmp_path, caplog):
  """The bypass: sha256sums.txt removed and a bit flipped restored step 3 "unverified" (wrong momentum)."""
  directory = str(tmp_path / "checkpoints")
  checkpoint_steps.save_steps(directory, [1, 2, 3])
  os.remove(os.path.join(directory, "3", checkpoints.CHECKSUMS_FILE))
  _flip_a_bit(os.path.join(directory, "3"))
  checkpointer = checkpoints.Checkpointer(directory, keep=5, every_steps=1)
  with caplog.at_level(logging.WARNING):
    state, meta = checkpointer.restore_latest({"w": jax.numpy.zeros(64, np.float32)})
  checkpointer.close()
  assert meta == {"input_position": 2} and float(state["w"][0]) == 2
  assert f"step 3 in {directory} cannot be read (ChecksumError: no {checkpoints.CHECKSUMS_FILE}, though" in caplog.text
  assert os.path.isdir(os.path.join(directory, checkpoints.UNREADABLE_DIR, "3"))


def test_a_run_saved_before_checksums_still_restores_unverified(tmp_path):
  directory = str(tmp_path / "checkpoints")
  checkpoint_steps.save_steps(directory, [1, 2])
  for step in (1, 2):
    os.remove(os.path.join(directory, str(step), checkpoints.CHECKSUMS_FILE))
  checkpointer = checkpoints.Checkpointer(directory, keep=5, every_steps=1)
  _, meta = checkpointer.restore_latest({"w": jax.numpy.zeros(64, np.float32)})
  checkpointer.close()
  assert meta == {"input_position": 2}


@flax.struct.dataclass
class _Stepped:
  step: jax.Array
  w: jax.Array


def _swap(directory: str, a: int, b: int) -> None:
  os.replace(os.path.join(directory, str(a)), os.path.join(directory, "swap"))
  os.replace(os.path.join(directory, str(b)), os.path.join(directory, str(a)))
  os.replace(os.path.join(directory, "swap"), os.path.join(directory, str(b)))


def test_swapped_checkpoint_folders_are_set_aside_and_the_run_resumes_from_a_true_one(tmp_path, caplog):
  """checkpoints/2 <-> 4: the trainer trusted the step inside, trained from 2, then failed every rerun."""
  directory = str(tmp_path / "checkpoints")
  checkpointer = checkpoints.Checkpointer(directory, keep=5, every_steps=1)
  for step in (1, 2, 4):
    checkpointer.save(step, _Stepped(np.int32(step), np.full(8, step, np.float32)), {"input_position": step})
  checkpointer.close()
  _swap(directory, 2, 4)
  checkpointer = checkpoints.Checkpointer(directory, keep=5, every_steps=1)
  template = _Stepped(jax.numpy.zeros((), np.int32), jax.numpy.zeros(8, np.float32))
  with caplog.at_level(logging.WARNING):
    state, meta = checkpointer.restore_latest(template)
  checkpointer.close()
  assert int(state.step) == 1 and meta == {"input_position": 1}
  assert "(StepMismatchError: the folder 4 holds the state of step 2 (checkpoint folders renamed" in caplog.text
  assert sorted(os.listdir(os.path.join(directory, checkpoints.UNREADABLE_DIR))) == ["2", "4"]


def _inf_at_step(loader, monkeypatch, bad_step):
  real_iterator = loader.train_batches

  def iterator(spec, *, start_step=0, **kwargs):
    for step, batch in enumerate(real_iterator(spec, start_step=start_step, **kwargs), start_step + 1):
      yield dict(batch, image=np.full(batch["image"].shape, np.inf, np.float32)) if step == bad_step else batch

  monkeypatch.setattr(loader, "train_batches", iterator)


@pytest.mark.slow
def test_a_divergence_right_after_resuming_names_the_restored_checkpoint(
  finished_run, mock_loader, tmp_path, monkeypatch
):
  workdir = copy_of(finished_run[0], tmp_path)
  _inf_at_step(mock_loader, monkeypatch, 5)
  config = fashion_mnist.get_config("smoke")
  config.num_train_steps = 8
  with pytest.raises(divergence.DivergedError) as error:
    loop.train_and_evaluate(config, str(workdir), allow_config_change=True)
  message = str(error.value)
  assert "loss is nan at step 5, before any save since this run resumed from the checkpoint of step 4" in message
  assert "That checkpoint is the suspect" in message and "checkpoints/4 into WORKDIR/checkpoints/unreadable/" in message


# --- 3. Sweeps ---------------------------------------------------------------------------------

# A stand-in trainer: records its process group, then waits; a signal makes it exit 75 as main does.
FAKE_TRAINER = """
import json, os, signal, sys, time
workdir = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--workdir=")][0]
os.makedirs(workdir, exist_ok=True)
def stop(signum, frame):
  open(os.path.join(workdir, "stopped_by"), "w").write(signal.Signals(signum).name)
  sys.exit(75)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
json.dump({"pid": os.getpid(), "pgid": os.getpgid(0)}, open(os.path.join(workdir, "started.tmp"), "w"))
os.replace(os.path.join(workdir, "started.tmp"), os.path.join(workdir, "started"))
time.sleep(120)
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_sweep_reaches_its_trainer_and_launches_nothing_more(tmp_path, signum):
  trainer = tmp_path / "trainer.py"
  trainer.write_text(FAKE_TRAINER)
  root = tmp_path / "sweep"
  sweep = subprocess.Popen(
    [
      sys.executable,
      "launch/sweep.py",
      "--sweep=smoke",
      f"--root={root}",
      f"--main_command={sys.executable} {trainer}",
    ],
    cwd=REPO,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  deadline = time.monotonic() + 60
  while not (started := [d for d in root.glob("*") if (d / "started").exists()]):
    assert time.monotonic() < deadline and sweep.poll() is None, sweep.communicate()
    time.sleep(0.05)
  sweep.send_signal(signum)
  out, err = sweep.communicate(timeout=60)
  assert sweep.returncode == preemption.EXIT_PREEMPTED, out + err
  (first,) = started
  record = json.loads((first / "started").read_text())
  assert record["pgid"] == record["pid"]  # its own process group
  assert (first / "stopped_by").read_text() == signal.Signals(signum).name
  assert f"sweep stopped by {signal.Signals(signum).name}; runs stopped after saving: {first.name}" in err
  assert [d.name for d in root.glob("*") if (d / "started").exists()] == [first.name]  # nothing more launched
  assert "Traceback" not in err


def test_a_broken_summary_is_a_failed_run_in_the_report_and_is_redone(tmp_path):
  fake = os.path.join(REPO, "tests", "support", "fake_sweep_main.py")
  root = str(tmp_path / "sweep")
  sweep = fashion_mnist_sweep()
  jobs = runner.plan(sweep, root, (sys.executable, str(fake)))
  runner.write_manifest(sweep, jobs, root)
  assert runner.run_locally(jobs, report=lambda m: None) == []
  broken = jobs[1]
  with open(os.path.join(broken.workdir, runner.SUMMARY_FILE), "w") as f:
    f.write('{"eval_top1_error": 0.1')  # cut off mid-write
  table = open(report.write_report(root, hparams=False)["table"]).read()
  assert f"{len(jobs) - 1}/{len(jobs)} runs finished" in table
  assert "1 failed: their summary.json cannot be read" in table and f"- {broken.run.name}: " in table
  messages = []
  assert runner.run_locally(jobs, report=messages.append) == []  # the rerun redoes only that run
  assert messages[0].startswith(f"{len(jobs) - 1}/{len(jobs)} runs already finished")
  assert f"{len(jobs)}/{len(jobs)} runs finished" in open(report.write_report(root, hparams=False)["table"]).read()


def fashion_mnist_sweep():
  from alexnet_jax import sweeps

  return sweeps.Sweep(
    "experiments/fashion_mnist.py",
    sweeps.product(sweeps.axis("dropout", "model.dropout_rate", [0.0, 0.5]), sweeps.seeds(2)),
  )


# --- 4, 5. One error line, and the workdir as it was --------------------------------------------


@pytest.mark.slow
def test_a_split_that_does_not_exist_fails_before_anything_is_written(tiny_tfds, tmp_path):
  """The real main on real data (the mock data ignores split names)."""
  workdir = tmp_path / "run"
  failed = run_main(f"--workdir={workdir}", SMOKE, f"--config.data_dir={tiny_tfds}", "--config.train_split=nonsense")
  assert failed.returncode == 1 and "Traceback" not in failed.stderr
  assert error_lines(failed.stderr) == [
    "error: config.train_split='nonsense' cannot be read from fashion_mnist (Unknown split 'nonsense'. Should be one"
    " of ['train', 'test'].); its splits are ['test', 'train'] (slices like 'train[:90%]' work too)"
  ]
  assert not workdir.exists()  # it did not exist, and nothing recorded the bad split for the corrected command


@pytest.mark.slow
@pytest.mark.parametrize(
  "changes,expected",
  [
    ({"eval_split": "test[:0]"}, "config.eval_split='test[:0]' of fashion_mnist holds no examples"),
    ({"batch_size": 128}, "config.batch_size=128 exceeds the 64 training examples (config.train_split='train')"),
    ({"num_epochs": 1e9, "num_train_steps": -1}, "plans 4000000000 steps of 4 per epoch, more than the int32 step"),
    ({"seed": 2**63}, "config.seed=9223372036854775808 is not allowed: expected an integer in [0, 2**32)"),
  ],
)
def test_values_that_fail_on_the_data_or_are_absurd_fail_before_anything_is_written(
  tiny_tfds, tmp_path, changes, expected
):
  with pytest.raises(ValueError) as error:
    loop.train_and_evaluate(tiny_config(tiny_tfds, **changes), str(tmp_path / "run"))
  assert expected in str(error.value)
  assert isinstance(error.value, loop.validation.ConfigError)
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_data_dir_that_is_a_file_is_one_error(tmp_path):
  (tmp_path / "tfds").write_text("")
  with pytest.raises(datasets.DatasetUnavailableError, match="config.data_dir=.* is a file, not a directory"):
    loop.train_and_evaluate(tiny_config(str(tmp_path / "tfds")), str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("damage", ["truncated shard", "flipped byte", "no dataset_info.json"])
def test_damaged_tfds_files_say_how_to_prepare_them_again(tiny_tfds, tmp_path, damage):
  from alexnet_jax.data import input_spec, loader

  data_dir = str(shutil.copytree(tiny_tfds, tmp_path / "tfds"))
  version_dir = os.path.join(data_dir, "fashion_mnist", "3.0.1")
  shard = os.path.join(version_dir, "fashion_mnist-train.array_record-00000-of-00001")
  if damage == "truncated shard":
    os.truncate(shard, os.path.getsize(shard) // 2)
  elif damage == "flipped byte":
    with open(shard, "r+b") as f:
      f.seek(os.path.getsize(shard) // 2)
      f.write(b"\xff\xff")
  else:
    os.remove(os.path.join(version_dir, "dataset_info.json"))
  config = tiny_config(data_dir)
  with pytest.raises(datasets.DatasetCorruptError) as error:
    next(loader.train_batches(input_spec.build(config)))
  message = str(error.value)
  assert f"reading fashion_mnist from {version_dir} failed (" in message and "Traceback" not in message
  assert f"  mv {version_dir} {os.path.join(data_dir, 'fashion_mnist-3.0.1.damaged')}\nand rerun" in message


@pytest.mark.slow
def test_a_config_json_that_is_not_json_is_refused_and_left_alone(tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "config.json").write_text("")
  with pytest.raises(
    run_dir.WorkdirError, match=r"config.json cannot be read \(Expecting value.*--allow_config_change"
  ):
    loop.train_and_evaluate(fashion_mnist.get_config("smoke"), str(workdir))
  assert listing(workdir) == ["config.json"] and (workdir / "config.json").read_text() == ""


@pytest.mark.slow
def test_a_read_only_checkpoint_dir_fails_at_start_up(tiny_tfds, tmp_path, monkeypatch):
  workdir = tmp_path / "run"
  (workdir / "checkpoints").mkdir(parents=True)
  real = loop.run_dir.tempfile.NamedTemporaryFile

  def read_only_checkpoints(*args, dir, **kwargs):  # root ignores chmod: what a read-only mount gives
    if os.path.basename(dir) == "checkpoints":
      raise PermissionError(13, "Permission denied")
    return real(*args, dir=dir, **kwargs)

  monkeypatch.setattr(loop.run_dir.tempfile, "NamedTemporaryFile", read_only_checkpoints)
  with pytest.raises(run_dir.WorkdirError, match=r"checkpoints is not a writable directory \(Permission denied\)"):
    loop.train_and_evaluate(tiny_config(tiny_tfds), str(workdir))
  assert listing(workdir) == ["checkpoints"]


@pytest.mark.slow
def test_a_failed_save_stops_with_a_message_and_keeps_the_last_good_checkpoint(
  finished_run, mock_loader, tmp_path, monkeypatch
):
  workdir = copy_of(finished_run[0], tmp_path)
  real_digests = checkpoints._digests  # pylint: disable=protected-access

  def disk_full_at_step_6(step_dir):  # in the background thread that finishes the save
    if os.path.basename(step_dir).startswith("6."):
      raise OSError(28, "No space left on device")
    return real_digests(step_dir)

  monkeypatch.setattr(checkpoints, "_digests", disk_full_at_step_6)
  config = fashion_mnist.get_config("smoke")
  config.num_train_steps = 8
  with pytest.raises(checkpoints.CheckpointError) as error:
    loop.train_and_evaluate(config, str(workdir), allow_config_change=True)
  message = str(error.value)
  assert "saving the checkpoint of step 6 in" in message and "No space left on device" in message
  assert "the last complete checkpoint (step 4) is kept" in message
  assert ocp.CheckpointManager(str(workdir / "checkpoints")).all_steps() == [2, 4]
  assert not list((workdir / "checkpoints").glob("*.orbax-checkpoint-tmp*"))  # the failed save leaves nothing


@pytest.mark.slow
def test_a_refused_config_change_leaves_config_json_as_it_was(finished_run, mock_loader, tmp_path):
  workdir = copy_of(finished_run[0], tmp_path)
  recorded = (workdir / "config.json").read_text()
  config = fashion_mnist.get_config("smoke")
  config.model.width = 0.5  # the checkpoints' shapes no longer fit
  with pytest.raises(checkpoints.CheckpointError, match="none can be read"):
    loop.train_and_evaluate(config, str(workdir), allow_config_change=True)
  assert (workdir / "config.json").read_text() == recorded


@pytest.mark.slow
def test_no_readable_checkpoint_is_one_error_without_library_noise(finished_run, tmp_path):
  workdir = copy_of(finished_run[0], tmp_path)
  os.remove(workdir / "summary.json")
  for step_dir in (workdir / "checkpoints").iterdir():
    os.remove(step_dir / checkpoints.CHECKSUMS_FILE)  # as an older version saved them: orbax itself fails
    for data in (step_dir / "state" / "ocdbt.process_0" / "d").iterdir():
      os.truncate(data, 100)
  result = run_main(f"--workdir={workdir}", SMOKE, mock=True)
  assert result.returncode == 1
  assert "Traceback" not in result.stderr and "Event loop is closed" not in result.stderr
  (line,) = error_lines(result.stderr)
  assert "holds checkpoints but none can be read" in line and len(line) < 1200
  assert len(result.stderr.splitlines()) < 40, result.stderr


# --- 6. Signals at any moment; complete summaries after a resume ------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_starting_up_exits_75(tmp_path, signum):
  process = subprocess.Popen(
    [
      sys.executable,
      MAIN_ON_MOCK_DATA,
      f"--workdir={tmp_path / 'run'}",
      SMOKE,
    ],
    cwd=REPO,
    stderr=subprocess.PIPE,
    text=True,
  )
  time.sleep(1.5)  # importing TensorFlow and JAX, long before the first step
  process.send_signal(signum)
  _, err = process.communicate(timeout=60)
  assert process.returncode == preemption.EXIT_PREEMPTED, err[-2000:]
  assert f"stopped by {signal.Signals(signum).name} before training started" in err
  assert "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("summary", ["missing", "garbage"])
def test_a_resumed_final_checkpoint_writes_a_complete_summary(finished_run, mock_loader, tmp_path, summary):
  workdir = copy_of(finished_run[0], tmp_path)
  path = workdir / "summary.json"
  if summary == "missing":  # e.g. SIGTERM during the final evaluation
    path.unlink()
  else:
    path.write_text("\x00garbage")
  record = loop.train_and_evaluate(fashion_mnist.get_config("smoke"), str(workdir))
  want = finished_run[1]
  train_fields = sorted(name for name in want if name.startswith("train_"))
  assert train_fields and sorted(name for name in record if name.startswith("train_")) == train_fields
  assert all(record[name] == want[name] for name in train_fields + ["eval_top1_error", "step"])
  assert json.loads(path.read_text())["train_loss"] == want["train_loss"]
