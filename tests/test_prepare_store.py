"""``prepare_store`` from the ILSVRC-2012 tars: odd images (CMYK, grey, PNG named .JPEG, corrupt),
``--on_bad_image``, resuming a killed run, and the resize method ("shorter_side" or "warp") from the
config to the store's record, the run that reads it, and ``predict``."""

import dataclasses
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from support import fake_ilsvrc

from alexnet_jax import utils
from alexnet_jax.data import images, input_spec, loader, prepare_store, store
from alexnet_jax.inference import export, prediction
from alexnet_jax.rules import ConfigError
from experiments import imagenet2012

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORRUPT_WHERE = "ILSVRC2012_img_train.tar: n01440764.tar/n01440764_4.JPEG (class n01440764)"


def tar_config(folder, resize="shorter_side"):
  """The :smoke ImageNet config (76x76 squares) reading fake tars in ``folder/manual``."""
  config = imagenet2012.get_config("smoke")
  config.data_dir = str(folder / "tfds")
  config.manual_dir = str(folder / "manual")
  config.input.resize = resize
  return config


def banded(height=40, width=80) -> np.ndarray:
  """A 1:2 image whose outer eighths (red left, blue right) only a warp keeps: the central square is grey."""
  image = np.full((height, width, 3), 128, np.uint8)
  image[:, : width // 8] = (255, 0, 0)
  image[:, -width // 8 :] = (0, 0, 255)
  return image


# Decoding the odd files of the real tars.


def test_cmyk_grey_and_png_named_jpeg_decode_to_their_rgb_pixels():
  rng = np.random.default_rng(0)
  rgb = Image.fromarray(rng.integers(0, 256, (9, 12, 3), np.uint8)).resize((120, 90), Image.BILINEAR)
  for mode, image in (("CMYK", rgb.convert("CMYK")), ("L", rgb.convert("L"))):
    data = io.BytesIO()
    image.save(data, format="JPEG", quality=95)
    decoded = images.decode(data.getvalue(), 3)
    assert decoded.shape == (90, 120, 3)
    expected = np.asarray(rgb if mode == "CMYK" else rgb.convert("L").convert("RGB"), np.float64)
    assert np.abs(decoded - expected).mean() < 3  # the source's colours, up to JPEG's loss
  png = io.BytesIO()
  rgb.save(png, format="PNG")
  np.testing.assert_array_equal(images.decode(png.getvalue(), 3), np.asarray(rgb))  # lossless: exact
  truncated = fake_ilsvrc.special_image(rng, fake_ilsvrc.CORRUPT_NAME, (60, 90))
  with pytest.raises(images.ImageDecodeError, match="truncated"):
    images.decode(truncated, 3)


# --on_bad_image, through the command as a user runs it.


def run_prepare_store(config, *flags):
  args = [f"--config.data_dir={config.data_dir}", f"--config.manual_dir={config.manual_dir}", *flags]
  command = [sys.executable, "-m", "alexnet_jax.data.prepare_store", "--config=experiments/imagenet2012.py:smoke"]
  return subprocess.run([*command, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_corrupt_image_stops_the_command_with_one_line_or_is_skipped_and_named(tmp_path):
  fake_ilsvrc.write_tars(str(tmp_path / "manual"))
  config = tar_config(tmp_path)
  stopped = run_prepare_store(config, "--on_bad_image=stop", "--workers=2", "--images_per_shard=2")
  assert stopped.returncode == 1
  assert "Traceback" not in stopped.stderr
  errors = [line for line in stopped.stderr.splitlines() if "error" in line.lower()]
  assert len(errors) == 1 and errors[0].startswith(f"error: {CORRUPT_WHERE}: not a readable image"), stopped.stderr
  path = store.directory(config.data_dir, "imagenet2012", config.input.resize_size)
  assert not store.is_prepared(path)
  assert "imagenet2012_76-train.array_record-00000-of-00004" not in os.listdir(path)  # the bad image's shard

  skipped = run_prepare_store(config, "--workers=2", "--images_per_shard=2")  # resumes the stopped run
  assert skipped.returncode == 0, skipped.stderr[-3000:]
  assert "1 unreadable images left out (train: 1, validation: 0)" in skipped.stdout
  assert "prepare_store: " in skipped.stderr and "images/s, ETA " in skipped.stderr  # the progress line
  assert store.read_info(path)["skipped"] == {"train": [CORRUPT_WHERE], "validation": []}
  assert {name: s.num_examples for name, s in store.load(path).info.splits.items()} == {"train": 19, "validation": 5}


# Resuming.


def test_a_killed_run_rerun_writes_only_the_missing_shards_and_no_half_shard_reads_as_done(tmp_path):
  fake_ilsvrc.write_tars(str(tmp_path / "manual"))
  config = tar_config(tmp_path)
  with pytest.raises(prepare_store.BadImageError, match="n01440764_4.JPEG"):  # the first shard fails midway
    prepare_store.prepare(config, workers=1, images_per_shard=2, on_bad_image="stop", progress=False)
  path = store.directory(config.data_dir, "imagenet2012", config.input.resize_size)
  assert set(os.listdir(path)) == {store.INFO_FILE, "shard_stats"}  # neither the shard nor its temporary file

  fake_ilsvrc.write_tars(str(tmp_path / "manual"), corrupt=False)
  prepare_store.prepare(config, workers=1, images_per_shard=2, progress=False)
  shards = sorted(f for f in os.listdir(path) if ".array_record-" in f)
  mtimes = {f: os.stat(os.path.join(path, f)).st_mtime_ns for f in shards}
  # Killed while writing the second shard, after the metadata of the first run was gone.
  os.replace(os.path.join(path, shards[1]), os.path.join(path, shards[1] + prepare_store.TEMPORARY))
  for name in ("dataset_info.json", store.STATS_FILE):
    os.remove(os.path.join(path, name))
  with pytest.raises(prepare_store.StoreError, match="begun with other settings"):
    prepare_store.prepare(tar_config(tmp_path, "warp"), workers=1, images_per_shard=2, progress=False)
  prepare_store.prepare(config, workers=1, images_per_shard=2, progress=False)
  assert store.is_prepared(path) and not [f for f in os.listdir(path) if f.endswith(prepare_store.TEMPORARY)]
  assert [f for f in shards if os.stat(os.path.join(path, f)).st_mtime_ns != mtimes[f]] == [shards[1]]
  assert store.load(path).info.splits["train"].num_examples == 20
  with pytest.raises(prepare_store.StoreError, match="made with resize='shorter_side'"):
    prepare_store.prepare(tar_config(tmp_path, "warp"), workers=1, progress=False)


@pytest.mark.parametrize(
  "settings, flag",
  [
    ({"images_per_shard": -5}, "--images_per_shard=-5"),  # range(0, n, -5) dropped the validation split
    ({"images_per_shard": 0}, "--images_per_shard=0"),
    ({"workers": -3}, "--workers=-3"),
    ({"quality": 500}, "--quality=500"),  # was recorded in store_info.json, then blocked the corrected command
    ({"quality": 0}, "--quality=0"),
    ({"on_bad_image": "ignore"}, "--on_bad_image='ignore'"),
  ],
)
def test_every_setting_is_checked_before_anything_is_written(tmp_path, settings, flag):
  fake_ilsvrc.write_tars(str(tmp_path / "manual"), corrupt=False)
  config = tar_config(tmp_path)
  with pytest.raises(prepare_store.StoreError, match=f"^{flag} is not allowed: expected"):
    prepare_store.prepare(config, progress=False, **settings)
  assert not os.path.exists(config.data_dir)


def test_a_failed_start_does_not_block_the_corrected_command_and_a_complete_store_keeps_its_settings(tmp_path):
  fake_ilsvrc.write_tars(str(tmp_path / "manual"))
  config = tar_config(tmp_path)
  with pytest.raises(prepare_store.BadImageError):  # stops in the first shard: nothing finished
    prepare_store.prepare(config, workers=1, quality=80, images_per_shard=2, on_bad_image="stop", progress=False)
  fake_ilsvrc.write_tars(str(tmp_path / "manual"), corrupt=False)
  path = prepare_store.prepare(config, workers=1, quality=90, images_per_shard=4, progress=False)
  assert store.read_info(path)["quality"] == 90
  assert set(store.load(path).info.splits) == {"train", "validation"}
  for other in ({"quality": 80}, {"images_per_shard": 2}):
    with pytest.raises(prepare_store.StoreError, match=f"is complete, made with {next(iter(other))}="):
      prepare_store.prepare(config, workers=1, progress=False, **{"quality": 90, "images_per_shard": 4, **other})
  assert prepare_store.prepare(config, workers=1, quality=90, images_per_shard=4, progress=False) == path


# prepare_store with files limited to argv[1] bytes: writing past it fails with EFBIG, as on a full disk
# (root ignores read-only folders; the limit holds for everyone, Python ignores SIGXFSZ, and the spawned
# workers inherit it). Set in the child itself: a preexec_fn would fork this multithreaded process.
WITH_FILE_SIZE_LIMIT = """
import resource, runpy, sys
limit = int(sys.argv.pop(1))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
runpy.run_module("alexnet_jax.data.prepare_store", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_a_disk_that_fills_up_is_one_line_naming_the_shard_and_the_finished_shards_stay(tmp_path):
  fake_ilsvrc.write_tars(str(tmp_path / "manual"))
  config = tar_config(tmp_path)
  args = [f"--config.data_dir={config.data_dir}", f"--config.manual_dir={config.manual_dir}", "--workers=2"]
  command = [sys.executable, "-c", WITH_FILE_SIZE_LIMIT, "20000", "--config=experiments/imagenet2012.py:smoke"]
  full = subprocess.run([*command, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
  errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "failed" in errors[0] and "rerun the same command to resume" in errors[0], full.stderr
  path = store.directory(config.data_dir, "imagenet2012", config.input.resize_size)
  assert not store.is_prepared(path)
  resumed = run_prepare_store(config, "--workers=2")  # room again: the same command finishes the store
  assert resumed.returncode == 0, resumed.stderr
  assert store.is_prepared(path)


def test_progress_counts_the_work_read_and_gives_an_eta():
  meter = prepare_store.Progress(4_000_000_000, 1_000_000_000, "bytes", enabled=False)
  meter.start -= 10  # 10 s ago
  meter.update(500, 1_000_000_000)  # this run: 1 GB in 10 s, 2 GB left
  assert meter.line() == (
    "2.00 of 4.00 GB of the tars read (50.0%), 500 images written this run, 50.0 images/s, ETA 0:00:20"
  )


# The resize method.


def test_warp_keeps_the_whole_image_and_shorter_side_its_central_square():
  image = banded()
  central = images.central_square(image, 20, "shorter_side")
  warped = images.central_square(image, 20, "warp")
  np.testing.assert_array_equal(central[:, 0], np.full((20, 3), 128))  # the central square: grey
  np.testing.assert_array_equal(warped[:, 0], np.tile([255, 0, 0], (20, 1)))  # the red eighth
  np.testing.assert_array_equal(warped[:, -1], np.tile([0, 0, 255], (20, 1)))  # the blue eighth
  np.testing.assert_array_equal(central, images.central_square(image, 20))  # the paper's is the default
  with pytest.raises(ValueError, match="resize='crop'"):
    images.central_square(image, 20, "crop")


def banded_tars(folder):
  """Fake tars of 1:2 banded images (plus the usual odd ones)."""

  def make_image(rng, name, size):
    if name in (fake_ilsvrc.CMYK_NAME, fake_ilsvrc.GREY_NAME, fake_ilsvrc.PNG_NAME, fake_ilsvrc.CORRUPT_NAME):
      return fake_ilsvrc.special_image(rng, name, size)
    return images.encode_png(banded())

  return fake_ilsvrc.write_tars(str(folder / "manual"), make_image=make_image)


@pytest.fixture(scope="module")
def warp_store(tmp_path_factory):
  folder = tmp_path_factory.mktemp("warp")
  files = banded_tars(folder)
  config = tar_config(folder, "warp")
  config.batch_size = 8
  return config, files, prepare_store.prepare(config, workers=1, progress=False)


def test_a_warp_store_holds_warped_squares_and_records_its_method(warp_store):
  config, files, path = warp_store
  size = config.input.resize_size
  assert store.resize_method(path) == "warp" and store.read_info(path)["quality"] == 90
  source = store.load(path).as_data_source(split="validation", decoders={"image": tfds.decode.SkipDecoding()})
  example = source[0]
  data = files[example["file_name"].decode()]
  warped = images.central_square(images.decode(data, 3), size, "warp")
  assert not np.array_equal(warped, images.central_square(images.decode(data, 3), size))
  assert example["image"] == images.encode_jpeg(warped, 90)


def test_a_run_refuses_a_store_made_the_other_way_and_old_stores_count_as_shorter_side(warp_store):
  config, _, path = warp_store
  assert input_spec.build(config).resize == "warp"
  other = config.copy_and_resolve_references()
  other.input.resize = "shorter_side"
  with pytest.raises(ConfigError, match="config.input.resize='shorter_side' but the store .* resize='warp'"):
    input_spec.build(other)
  info = store.read_info(path)
  os.remove(os.path.join(path, store.INFO_FILE))  # as a store made before the record
  try:
    assert input_spec.build(other).resize == "shorter_side"
    with pytest.raises(ConfigError, match="made with resize='shorter_side'"):
      input_spec.build(config)
  finally:
    utils.write_json_atomically(os.path.join(path, store.INFO_FILE), info)


class SquaresSeen:
  """A stand-in for a trained run: the spec, and the squares ``predict`` hands the model."""

  def __init__(self, spec):
    self.spec, self.view_spec, self.squares = spec, spec, None

  def label_names(self):
    return list(self.spec.label_names)

  def log_probs(self, squares):
    self.squares = squares
    return np.zeros((len(squares), self.spec.num_classes))


def test_predict_and_the_loader_make_squares_by_the_runs_method(warp_store, tmp_path):
  config, _, _ = warp_store
  spec = input_spec.build(config)
  Image.fromarray(banded()).save(tmp_path / "banded.png")
  expected = {resize: images.central_square(banded(), spec.resize_size, resize) for resize in ("warp", "shorter_side")}
  for resize, square in expected.items():
    run = SquaresSeen(dataclasses.replace(spec, resize=resize))
    prediction.predict_files(run, [str(tmp_path / "banded.png")])
    np.testing.assert_array_equal(run.squares[0], square)
    out = np.empty_like(square)
    loader.square_into(images.encode_png(banded()), out, dataclasses.replace(spec, resize=resize, image_size=None))
    np.testing.assert_array_equal(out, square)


def test_an_exported_description_says_how_the_square_was_made():
  for resize, words in (("shorter_side", "shorter side resized to resize_size, central"), ("warp", "whole image")):
    config = imagenet2012.get_config("smoke")
    config.input.resize = resize
    described = export.description(config, step=1, export_format="npz")["input"]
    assert described["resize"] == resize and described["pixels"].startswith(words)
