"""Every command keeps its promise (issue 26): a failure the user can act on is one ``error:`` line
(or absl's one ``FATAL Flags parsing error`` line) with exit status 1, and nothing already written is
overwritten or half-written.

The in-process tests pin the rules (``alexnet_jax/outputs.py``, config files, checkpoints a trainer
deletes, image sizes, data folders); the ``slow`` ones attack the command lines themselves, on one
``:smoke`` run trained for the module on mock data. Read-only folders are made with ``chattr +i``
(root ignores ``chmod``); those tests are skipped where it is not available.
"""

import errno
import io
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image
from support import checkpoint_steps, smoke_run

from alexnet_jax import flag_errors, outputs
from alexnet_jax.data import datasets
from alexnet_jax.inference import prediction, trained_run
from alexnet_jax.train import checkpoints, validation
from experiments import fashion_mnist

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ON_MOCK_DATA = os.path.join(REPO, "tests", "support", "mock_data_main.py")
FAKE_SWEEP_MAIN = os.path.join(REPO, "tests", "support", "fake_sweep_main.py")
SWEEP = os.path.join(REPO, "launch", "sweep.py")


def command(*args, cwd=REPO, env=None, timeout=300):
  """``python ARGS...`` in ``cwd``; the completed process (text)."""
  return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def on_mock_data(*args, **kwargs):
  """An alexnet_jax command (``main`` without one) on mock data, as a user runs it."""
  return command(ON_MOCK_DATA, *args, **kwargs)


def assert_one_error(result, *expected):
  """Exit status 1, no traceback, and the message (one ``error:`` or absl ``FATAL`` line) holds ``expected``."""
  assert result.returncode == 1, result.stderr[-2000:]
  assert "Traceback" not in result.stderr, result.stderr[-2000:]
  lines = [line for line in result.stderr.splitlines() if line.startswith(("error:", "FATAL Flags parsing error:"))]
  assert len(lines) >= 1, result.stderr[-2000:]
  for text in expected:
    assert text in lines[0], lines[0]


def run_file_digests(workdir):
  """Every file of a run with its size: what an attack must leave as it was."""
  found = {}
  for folder, _, files in os.walk(workdir):
    for name in files:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        found[os.path.relpath(path, workdir)] = hash(f.read())
  return found


class ReadOnly:
  """``chattr +i`` on a folder for the ``with`` block (skips the test where chattr cannot)."""

  def __init__(self, path):
    self.path = str(path)

  def __enter__(self):
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", self.path]).returncode:
      pytest.skip("chattr +i is not available here")
    return self.path

  def __exit__(self, *exc_info):
    subprocess.run(["chattr", "-i", self.path], check=True)


# --- outputs.py: the one way a command writes ----------------------------------------------------


@pytest.fixture
def run_dir(tmp_path):
  """A folder that looks like a training run's work directory."""
  workdir = tmp_path / "run"
  (workdir / "checkpoints" / "4").mkdir(parents=True)
  (workdir / "config.json").write_text("{}")
  (workdir / "events.out.tfevents.1.host").write_text("events")
  return workdir


@pytest.mark.parametrize(
  "name", ["config.json", "summary.json", "trainer.lock", "checkpoints/4/x", "events.out.tfevents.1.host"]
)
def test_an_output_onto_a_file_of_a_run_is_refused(run_dir, name):
  with pytest.raises(outputs.OutputError, match="belongs to the training run"):
    outputs.write_bytes(str(run_dir / name), b"x", overwrite=True)
  assert (run_dir / "config.json").read_text() == "{}"


def test_a_symlink_onto_a_run_file_is_refused(run_dir, tmp_path):
  os.symlink(run_dir / "config.json", tmp_path / "innocent.npz")
  with pytest.raises(outputs.OutputError, match="belongs to the training run"):
    outputs.write_bytes(str(tmp_path / "innocent.npz"), b"x", overwrite=True)


def test_beside_a_run_other_names_may_be_written(run_dir):
  assert outputs.write_text(str(run_dir / "eval_test_4.json"), "{}") == str(run_dir / "eval_test_4.json")


@pytest.mark.parametrize("kind", ["fifo", "symlink", "socket"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_only_a_regular_file_is_ever_replaced(tmp_path, kind, overwrite):
  """`export --overwrite` onto /dev/null replaced the device with a regular file; FIFOs, sockets and
  links are refused the same way (a device node needs root to make, so its kin stand in for it)."""
  path = tmp_path / "special"
  if kind == "fifo":
    os.mkfifo(path)
  elif kind == "symlink":
    (tmp_path / "target").write_bytes(b"kept")
    path.symlink_to(tmp_path / "target")
  else:
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
  with pytest.raises(outputs.OutputError, match="not a regular file: it is never replaced"):
    outputs.write_bytes(str(path), b"x", overwrite=overwrite)
  assert not path.is_file() or path.is_symlink()
  if kind == "symlink":
    assert (tmp_path / "target").read_bytes() == b"kept"


def test_a_symlink_loop_is_named_as_one(tmp_path):
  os.symlink(tmp_path / "b", tmp_path / "a")
  os.symlink(tmp_path / "a", tmp_path / "b")
  assert outputs.not_a_folder(str(tmp_path / "a")).startswith("is a symlink loop")
  with pytest.raises(outputs.OutputError, match="is a symlink loop"):
    outputs.make_folder(str(tmp_path / "a"))
  with pytest.raises(trained_run.RunError, match=r"--workdir=.* is a symlink loop"):  # evaluate, predict, figures,
    trained_run.check_workdir(str(tmp_path / "a"))  # export: they said "[Errno 40] Too many levels of symbolic links"


def test_an_empty_output_path_is_refused_before_any_work():
  with pytest.raises(outputs.OutputError, match="the output path is empty"):
    outputs.check("")


def test_a_file_that_appears_while_the_output_is_written_is_not_replaced_without_overwrite(tmp_path):
  """The race: another writer creates the file after the check; the link-based publish refuses."""
  path = tmp_path / "out.json"

  def racing_writer(f):
    path.write_bytes(b"the other writer's")
    f.write(b"ours")

  with pytest.raises(outputs.OutputError, match="appeared while it was being written"):
    outputs.write(str(path), racing_writer)
  assert path.read_bytes() == b"the other writer's"
  assert os.listdir(tmp_path) == ["out.json"]  # no temporary file left


def test_an_existing_output_is_replaced_only_with_overwrite(tmp_path):
  path = str(tmp_path / "out.npz")
  outputs.write_bytes(path, b"first")
  with pytest.raises(outputs.OutputError, match="exists; pass --overwrite"):
    outputs.write_bytes(path, b"second")
  outputs.write_bytes(path, b"second", overwrite=True)
  assert open(path, "rb").read() == b"second"


def test_parent_folders_are_made_and_a_file_in_the_way_is_one_line(tmp_path):
  path = tmp_path / "a" / "b" / "out.json"
  outputs.write_json(str(path), {"x": 1})
  assert json.loads(path.read_text()) == {"x": 1}
  (tmp_path / "plain").write_text("")
  with pytest.raises(outputs.OutputError, match="is a file, not a folder"):
    outputs.check(str(tmp_path / "plain" / "out.json"))
  with pytest.raises(outputs.OutputError, match="is a directory"):
    outputs.check(str(tmp_path / "a"))


def test_a_full_disk_leaves_the_old_file_and_no_temporary_one(tmp_path):
  path = tmp_path / "report.json"
  path.write_text("old")

  def full_disk(f):
    f.write(b"half")
    raise OSError(errno.ENOSPC, "No space left on device")

  with pytest.raises(outputs.OutputError, match="the disk is full; nothing was written there"):
    outputs.write(str(path), full_disk, overwrite=True)
  assert path.read_text() == "old"
  assert os.listdir(tmp_path) == ["report.json"]


def test_a_read_only_folder_is_one_line_naming_it(tmp_path):
  (tmp_path / "ro").mkdir()
  with ReadOnly(tmp_path / "ro") as folder:
    with pytest.raises(outputs.OutputError, match=f"cannot write into {folder}"):
      outputs.write_bytes(os.path.join(folder, "out.npz"), b"x")
    with pytest.raises(outputs.OutputError, match=f"cannot make the folder {folder}/sub"):
      outputs.write_bytes(os.path.join(folder, "sub", "out.npz"), b"x")


# --- config and sweeps files ---------------------------------------------------------------------


@pytest.mark.parametrize(
  "source,expected",
  [
    ("def get_config(:\n  pass\n", "does not load: {path}, line 1: SyntaxError"),
    ("import no_such_module_here\n", "does not load: {path}, line 1: ModuleNotFoundError"),
    ("def get_config():\n  return 1 / 0\n", "its get_config raised {path}, line 2: ZeroDivisionError"),
    ("def get_config():\n  return {}['nope']\n", "its get_config raised {path}, line 2: KeyError: 'nope'"),
    ("X = 1\n", "{path} defines no get_config() function"),
  ],
)
def test_a_config_file_that_does_not_load_is_named_with_its_line(tmp_path, source, expected):
  path = tmp_path / "bad_config.py"
  path.write_text(source)
  with pytest.raises(flag_errors.ConfigFileError) as raised:
    flag_errors.load_config_file(str(path))
  assert expected.format(path=path) in str(raised.value)
  assert "\n" not in str(raised.value)


def test_configs_are_found_from_the_repository_wherever_the_command_starts(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert os.path.isfile(flag_errors.DEFAULT_CONFIG)
  argv = flag_errors.with_config_from_repo(["main", "--config=experiments/fashion_mnist.py:smoke"])
  assert argv[1] == f"--config={REPO}/experiments/fashion_mnist.py:smoke"
  (tmp_path / "experiments").mkdir()
  (tmp_path / "experiments" / "fashion_mnist.py").write_text("")  # a file here wins over the repository's
  assert flag_errors.in_repo("experiments/fashion_mnist.py") == "experiments/fashion_mnist.py"


# --- readers of a live run, image sizes, data folders --------------------------------------------


def test_a_reader_takes_the_newest_checkpoint_that_still_reads(tmp_path, monkeypatch):
  """The trainer deletes step 3 (keep_checkpoints) between the reader's listing and its read."""
  directory = str(tmp_path / "checkpoints")
  checkpoint_steps.save_steps(directory, [1, 2, 3])
  reader = checkpoints.Checkpointer(directory, keep=1, every_steps=1, read_only=True)
  restore = reader._restore

  def deleted_meanwhile(step, template):
    if step == 3:
      shutil.rmtree(os.path.join(directory, "3"))
    return restore(step, template)

  monkeypatch.setattr(reader, "_restore", deleted_meanwhile)
  state, meta = reader.read_newest({"w": jax.numpy.zeros(64, np.float32)})
  reader.close()
  assert meta == {"input_position": 2} and float(state["w"][0]) == 2
  assert sorted(os.listdir(directory)) == ["1", "2"]  # nothing moved by a reader


def test_a_reader_of_a_run_without_checkpoints_is_one_line(tmp_path):
  reader = checkpoints.Checkpointer(str(tmp_path), keep=1, every_steps=1, read_only=True)
  with pytest.raises(checkpoints.CheckpointError, match="holds no checkpoint; train the run first"):
    reader.read_newest({"w": jax.numpy.zeros(64, np.float32)})
  reader.close()


def test_images_are_size_checked_before_decoding(tmp_path, monkeypatch):
  monkeypatch.setattr(prediction, "MAX_PIXELS", 100 * 100)
  Image.new("L", (200, 120), 7).save(tmp_path / "big.png")
  Image.new("RGB", (400, 300), (9, 9, 9)).save(tmp_path / "big.jpg")
  with pytest.raises(prediction.ImageError, match="200x120 pixels, more than the 10,000"):
    prediction.load_image(str(tmp_path / "big.png"), 1)
  reduced = prediction.load_image(str(tmp_path / "big.jpg"), 3)  # a JPEG: decoded at a quarter of each side
  assert reduced.shape == (75, 100, 3) and reduced.size <= 3 * prediction.MAX_PIXELS


def test_image_files_are_read_with_bounds(tmp_path, monkeypatch):
  """Not a regular file: refused before reading (/dev/zero grew to 5 GB; a FIFO with no writer hung). Too large,
  or no image in its first bytes: refused after at most the header (a 3 GB non-image was read whole)."""
  os.mkfifo(tmp_path / "fifo")
  with open(tmp_path / "sparse.bin", "wb") as f:
    f.truncate(2 * 2**30)  # 2 GB that take no disk
  (tmp_path / "junk.png").write_bytes(b"\0" * (2 * prediction.HEADER_BYTES))
  reads, real_fdopen = [], os.fdopen

  class CountedReads(io.BufferedReader):
    def read(self, size=-1):
      reads.append(size)
      return super().read(size)

  monkeypatch.setattr(os, "fdopen", lambda fd, mode: CountedReads(real_fdopen(fd, mode, buffering=0)))
  for name, why in [
    ("/dev/zero", "not a regular file (a character device)"),
    (tmp_path / "fifo", "not a regular file (a FIFO)"),
    (tmp_path, "not a regular file (a directory)"),
    (tmp_path / "sparse.bin", f"2,147,483,648 bytes, more than the {prediction.MAX_FILE_BYTES:,}"),
    (tmp_path / "junk.png", "not a readable image"),
  ]:
    with pytest.raises(prediction.ImageError, match=re.escape(f"{name}: {why}")):
      prediction.read_image_file(str(name))
  assert reads == [prediction.HEADER_BYTES]  # the junk file's header only


def test_an_unwritable_data_folder_names_the_flag_and_the_variable(tmp_path):
  (tmp_path / "home").mkdir()
  with ReadOnly(tmp_path / "home") as home:
    with pytest.raises(datasets.DatasetUnavailableError) as raised:
      datasets.check_writable(os.path.join(home, "tensorflow_datasets"))
  message = str(raised.value)
  assert f"{home}/tensorflow_datasets cannot be written" in message
  assert "--config.data_dir=DIR" in message and "TFDS_DATA_DIR=DIR" in message


# --- the command lines ---------------------------------------------------------------------------


# --- config.json edited by hand ---------------------------------------------------------------


def _recorded(tmp_path, data) -> str:
  (tmp_path / "checkpoints").mkdir(exist_ok=True)
  (tmp_path / "config.json").write_text(json.dumps(data))
  return str(tmp_path)


@pytest.mark.parametrize(
  "data, message",
  [
    ([1, 2], "holds a JSON list, not an object of config fields"),
    ("model", "holds a JSON string, not an object"),
    (None, "holds a JSON null, not an object"),
    ({"model": None}, "config.model is a JSON null, expected an object of its fields ("),
    ({"input": [1]}, "config.input is a JSON list, expected an object of its fields"),
    ({"optimizer": "sgd"}, "config.optimizer is a JSON string, expected an object"),
  ],
)
def test_a_config_json_of_another_shape_is_one_line_naming_the_field(tmp_path, data, message):
  with pytest.raises(trained_run.RunError, match=re.escape(message)):
    trained_run.read_config(_recorded(tmp_path, data))


def test_unknown_fields_at_any_level_are_left_out_with_one_warning(tmp_path, caplog):
  config = json.loads(fashion_mnist.get_config("smoke").to_json_best_effort())
  config["model"]["wings"] = 2  # predict: TypeError ... unexpected keyword argument
  config["shiny"] = True
  config["input"]["nested"] = {"deeper": 1}
  with caplog.at_level(logging.WARNING):
    read = trained_run.read_config(_recorded(tmp_path, config))
  assert "wings" not in read.model and "shiny" not in read and "nested" not in read.input
  [warning] = [r.getMessage() for r in caplog.records if "does not know" in r.getMessage()]
  assert set(warning.split("left out: ")[1].split(", ")) == {
    "config.model.wings",
    "config.shiny",
    "config.input.nested",
  }
  validation.validate(read, device_count=1)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  return smoke_run.train(tmp_path_factory.mktemp("smoke"))


@pytest.mark.slow
def test_export_never_overwrites_and_prints_no_orbax_notices(workdir, tmp_path):
  before = run_file_digests(workdir)
  for target in (os.path.join(workdir, "config.json"), os.path.join(workdir, "checkpoints"), workdir):
    result = on_mock_data("export", f"--workdir={workdir}", "--format=npz", "--overwrite", target)
    assert_one_error(result, target)
  out = str(tmp_path / "new" / "folder" / "weights.npz")
  made = on_mock_data("export", f"--workdir={workdir}", "--format=npz", out)
  assert made.returncode == 0, made.stderr[-2000:]
  assert "read only" not in made.stderr.lower() and "read_only" not in made.stderr
  again = on_mock_data("export", f"--workdir={workdir}", "--format=npz", out)
  assert_one_error(again, f"{out} exists; pass --overwrite")
  assert on_mock_data("export", f"--workdir={workdir}", "--format=npz", "--overwrite", out).returncode == 0
  assert run_file_digests(workdir) == before


@pytest.mark.slow
def test_export_into_a_read_only_folder_is_one_line(workdir, tmp_path):
  (tmp_path / "ro").mkdir()
  with ReadOnly(tmp_path / "ro") as folder:
    result = on_mock_data("export", f"--workdir={workdir}", "--format=npz", os.path.join(folder, "w.npz"))
  assert_one_error(result, f"cannot write into {folder}")


@pytest.mark.slow
@pytest.mark.parametrize("split", ["test[:abc]", "test[:0]", "test[5:2]"])
def test_evaluate_refuses_splits_that_do_not_parse_or_are_empty(workdir, split):
  assert_one_error(on_mock_data("evaluate", f"--workdir={workdir}", f"--split={split}"), f"{split!r}")


@pytest.mark.slow
def test_evaluate_on_a_read_only_workdir_writes_nothing_and_says_where(workdir):
  with ReadOnly(workdir):
    result = on_mock_data("evaluate", f"--workdir={workdir}")
  assert_one_error(result, f"cannot write into {workdir}")
  assert not [name for name in os.listdir(workdir) if name.startswith("eval_")]


@pytest.mark.slow
def test_figures_refuse_a_file_as_out_and_unbounded_counts(workdir, tmp_path):
  (tmp_path / "taken").write_text("mine")
  result = on_mock_data("figures", f"--workdir={workdir}", f"--out={tmp_path / 'taken'}")
  assert_one_error(result, "is a file, not a folder")
  assert (tmp_path / "taken").read_text() == "mine"
  too_many = on_mock_data("figures", f"--workdir={workdir}", f"--out={tmp_path}", "--examples=20000")
  assert_one_error(too_many, "--examples=20000")


@pytest.mark.slow
def test_predict_refuses_a_huge_image_and_still_predicts_the_others(workdir, tmp_path):
  Image.new("1", (9000, 8000)).save(tmp_path / "huge.png")  # 72 million pixels in a few KB
  Image.new("L", (40, 30), 128).save(tmp_path / "small.png")
  os.mkfifo(tmp_path / "fifo")  # no writer: reading it would wait forever
  files = [tmp_path / "huge.png", "/dev/zero", tmp_path / "fifo", tmp_path / "small.png"]
  result = on_mock_data("predict", f"--workdir={workdir}", *map(str, files))
  assert result.returncode == 1 and "Traceback" not in result.stderr
  assert f"error: {tmp_path / 'huge.png'}: 9000x8000 pixels" in result.stderr
  assert "error: /dev/zero: not a regular file (a character device)" in result.stderr
  assert f"error: {tmp_path / 'fifo'}: not a regular file (a FIFO)" in result.stderr
  assert str(tmp_path / "small.png") in result.stdout


@pytest.mark.slow
def test_a_dangling_symlink_workdir_says_what_it_is(tmp_path):
  os.symlink(tmp_path / "gone", tmp_path / "link")
  result = on_mock_data(f"--workdir={tmp_path / 'link'}", "--config=experiments/fashion_mnist.py:smoke")
  assert_one_error(result, f"is a symlink to {tmp_path / 'gone'}, which does not exist")


@pytest.mark.slow
def test_a_config_that_raises_is_one_line_from_any_directory(tmp_path):
  (tmp_path / "raises.py").write_text("def get_config():\n  return {}['nope']\n")
  result = on_mock_data(f"--workdir={tmp_path / 'w'}", f"--config={tmp_path / 'raises.py'}", cwd=tmp_path)
  assert_one_error(result, f"{tmp_path / 'raises.py'}, line 2: KeyError: 'nope'")
  assert "has no field" not in result.stderr
  assert not os.path.exists(tmp_path / "w")


@pytest.mark.slow
def test_benchmark_input_counts_must_be_positive():
  for flag in ("--synthetic_images=0", "--timed_images=-5", "--epochs=0"):
    assert_one_error(command("-m", "alexnet_jax.benchmark_input", flag), flag)


# --- launch/sweep.py ------------------------------------------------------------------------------


def sweep(*args, cwd):
  return command(SWEEP, "--sweep=smoke", f"--main_command={sys.executable} {FAKE_SWEEP_MAIN}", *args, cwd=cwd)


@pytest.mark.slow
def test_a_sweep_from_another_directory_keeps_its_finished_runs(tmp_path):
  root = tmp_path / "sweep"
  first = sweep(f"--root={root}", "--seeds=2", cwd=tmp_path)  # not the repository: the sweeps file is found
  assert first.returncode == 0, first.stderr[-2000:]
  report, manifest = (root / "results.md").read_text(), (root / "sweep.json").read_text()
  assert "4/4 runs finished" in report
  for args, expected in [
    (("--seeds=0",), "--seeds=0"),
    (("--seeds=1",), "holds 2 finished run(s) this command would drop"),
    (("--report_only", f"--root={tmp_path / 'nowhere'}"), "holds no sweep"),
  ]:
    assert_one_error(sweep(f"--root={root}", *args, cwd=tmp_path), expected)
  assert (root / "results.md").read_text() == report and (root / "sweep.json").read_text() == manifest
  assert not (tmp_path / "nowhere").exists()
  (tmp_path / "a_file").write_text("")
  assert_one_error(sweep(f"--root={tmp_path / 'a_file'}", cwd=tmp_path), "is a file, not a folder")
