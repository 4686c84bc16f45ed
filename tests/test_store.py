"""The prepared store: fake ILSVRC-2012 tars read straight (no TFDS builder, no TensorFlow), the
preparation (ArrayRecord squares as JPEG bytes, statistics, resume), and the loader into train steps."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from support import fake_ilsvrc

from alexnet_jax.data import augment, images, input_spec, loader, prepare_store, store
from alexnet_jax.train import loop
from experiments import imagenet2012


def fake_imagenet_config(tmp_path):
  config = imagenet2012.get_config("smoke")  # 67x67 crops of 76x76 squares, batch 16
  config.data_dir = str(tmp_path / "tfds")
  config.manual_dir = str(tmp_path / "manual")
  return config


def tar_squares(files, size):
  """{file_name: uint8 central square} of every readable image of the fake tars."""
  return {
    name: images.central_square(images.decode(data, 3), size)
    for name, data in files.items()
    if name != fake_ilsvrc.CORRUPT_NAME
  }


@pytest.mark.slow
def test_fake_ilsvrc_tars_become_a_store_that_trains(tmp_path):
  files = fake_ilsvrc.write_tars(str(tmp_path / "manual"))
  config = fake_imagenet_config(tmp_path)
  size = config.input.resize_size
  path = prepare_store.prepare(config, workers=2, images_per_shard=2, progress=False)
  expected = tar_squares(files, size)

  built = store.load(path)
  assert path == os.path.join(config.data_dir, f"imagenet2012_{size}", "1.0.0")
  assert built.info.file_format.value == "array_record"
  assert {name: s.num_examples for name, s in built.info.splits.items()} == {"train": 19, "validation": 5}
  assert built.info.splits["train"].shard_lengths == [4, 5, 5, 5]  # a shard per class tar; one image unreadable
  assert len(built.info.splits["validation"].shard_lengths) == 3  # 5 files, 2 per shard
  names = built.info.features["label"].names
  assert len(names) == 1000 and [names.index(s) for s in fake_ilsvrc.SYNSETS] == [0, 1, 2, 59]  # TFDS's order
  labels = {}
  for split in ("train", "validation"):
    for example in built.as_data_source(split=split, decoders={"image": tfds.decode.SkipDecoding()}):
      file_name = example["file_name"].decode()
      labels[file_name] = names[example["label"]]
      assert example["image"] == images.encode_jpeg(expected[file_name], 90)  # the exact square, JPEG at 90
      assert images.decode(example["image"], 3).shape == (size, size, 3)
  train_names = [name for name in files if not name.startswith("ILSVRC")]
  assert {name: labels[name] for name in train_names if name in labels} == {
    name: name.split("_")[0] for name in train_names if name != fake_ilsvrc.CORRUPT_NAME
  }
  assert [labels[f"ILSVRC2012_val_{i:08d}.JPEG"] for i in range(1, 6)] == list(fake_ilsvrc.VALIDATION_SYNSETS)
  grey, cmyk = expected[fake_ilsvrc.GREY_NAME], expected[fake_ilsvrc.CMYK_NAME]
  assert np.array_equal(grey[..., 0], grey[..., 2]) and not np.array_equal(cmyk[..., 0], cmyk[..., 2])
  expected = {name: square for name, square in expected.items() if name in train_names}  # for the statistics

  stats = store.read_stats(path)
  squares = np.stack(list(expected.values())).astype(np.float64)
  np.testing.assert_allclose(stats["mean_image"], squares.mean(axis=0) / 255, atol=1e-6)
  np.testing.assert_allclose(stats["channel_mean"], squares.mean(axis=(0, 1, 2)) / 255, atol=1e-6)
  covariance = np.cov(squares.reshape(-1, 3).T / 255, bias=True)
  np.testing.assert_allclose(stats["eigenvalues"], np.linalg.eigvalsh(covariance)[::-1], rtol=1e-6)
  np.testing.assert_allclose(
    covariance @ stats["eigenvectors"], stats["eigenvectors"] * stats["eigenvalues"], atol=1e-9
  )

  # Interrupted before the end: only the missing shard is written again.
  shards = sorted(f for f in os.listdir(path) if ".array_record-" in f)
  mtimes = {f: os.stat(os.path.join(path, f)).st_mtime_ns for f in shards}
  for name in (shards[0], "dataset_info.json", store.STATS_FILE):
    os.remove(os.path.join(path, name))
  assert not store.is_prepared(path)
  prepare_store.prepare(config, workers=1, images_per_shard=2, progress=False)
  assert store.is_prepared(path)
  assert [f for f in shards if os.stat(os.path.join(path, f)).st_mtime_ns != mtimes.get(f)] == [shards[0]]
  np.testing.assert_array_equal(store.read_stats(path)["mean_image"], stats["mean_image"])

  # The ImageNet config reads the store: uint8 squares, its mean image, and a few train steps.
  spec = input_spec.build(config)
  assert spec.dataset_dir == path and spec.mean_image
  np.testing.assert_array_equal(spec.mean, stats["mean_image"])
  batch = next(loader.train_batches(spec))
  assert batch["image"].dtype == np.uint8 and batch["image"].shape == (16, size, size, 3)
  summary = loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert summary["step"] == config.num_train_steps and np.isfinite(summary["train_loss"])
  assert summary["eval_count"] == 5


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory):
  """A 24-image synthetic imagenet2012 and its store of 76x76 squares (the :smoke sizes)."""
  from alexnet_jax.yardsticks import synthetic_imagenet

  config = imagenet2012.get_config("smoke")
  config.data_dir = str(tmp_path_factory.mktemp("tfds"))
  config.batch_size = 8
  synthetic_imagenet.prepare(config.data_dir, num_train=24, num_validation=8)
  prepare_store.prepare(config, workers=1, progress=False)
  return config


def test_a_streamed_store_gives_the_in_memory_batches_and_resumes_exactly(synthetic_store):
  spec = input_spec.build(synthetic_store)
  assert spec.route is input_spec.Route.IN_MEMORY  # 24 squares fit; the full store would stream
  streamed = dataclasses.replace(spec, route=input_spec.Route.STREAMED)
  unbroken = [next(b) for b in [loader.train_batches(streamed)] for _ in range(7)]
  in_memory = loader.train_batches(spec)
  for batch in unbroken:
    np.testing.assert_array_equal(next(in_memory)["image"], batch["image"])
  for start_step in (2, 3, 5):  # mid-epoch (3 batches of 8 per epoch), at an epoch's end, in epoch 2
    resumed = loader.train_batches(streamed, start_step=start_step)
    for batch in unbroken[start_step:]:
      np.testing.assert_array_equal(next(resumed)["label"], batch["label"])


def test_store_views_subtract_the_mean_image_and_add_the_stores_colour_noise(synthetic_store):
  spec = input_spec.build(synthetic_store)
  stats = store.read_stats(spec.dataset_dir)
  assert spec.scales == tuple(np.sqrt(stats["eigenvalues"]))  # cuda-convnet2's form: each component's std
  batch = next(loader.train_batches(spec))
  centre = dataclasses.replace(spec, random_crop=False, random_flip=False, pca_noise_std=0.0)
  views = np.asarray(augment.train_inputs(centre, batch, 0))
  top = (spec.resize_size - spec.crop_size) // 2
  window = slice(top, top + spec.crop_size)
  expected = (batch["image"][:, window, window] / 255 - stats["mean_image"][window, window]) / np.asarray(spec.std)
  np.testing.assert_allclose(views, expected, atol=2e-3)  # raw-pixel scale (x 255)


def test_the_configs_mean_crop_reaches_the_views(synthetic_store):
  """``input.mean_crop="center"`` (the ``:cuda_convnet2`` rule) through ``input_spec.build``: a corner
  view loses the store's mean image's central crop, not its own corner."""
  config = synthetic_store.copy_and_resolve_references()
  config.input.mean_crop = "center"
  spec = input_spec.build(config)
  assert spec.mean_crop == "center" and spec.mean_image
  batch = next(loader.train_batches(spec))
  rows, size = len(batch["image"]), spec.crop_size
  corner = {"offset": np.zeros((rows, 2), np.int32), "flip": np.zeros(rows, bool), "alpha": np.zeros((rows, 3))}
  views = np.asarray(augment.train_views(batch["image"], corner, dataclasses.replace(spec, pca_noise_std=0.0)))
  top = (spec.resize_size - size) // 2
  centre = spec.mean[top : top + size, top : top + size]
  np.testing.assert_allclose(views, (batch["image"][:, :size, :size] / 255 - centre) / np.asarray(spec.std), atol=2e-3)


# The two commands, as a user runs them.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_module(module, *args, timeout=300):
  return subprocess.run(
    [sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
  )


@pytest.mark.slow
def test_benchmark_input_synthetic_prints_one_json_line(tmp_path):
  args = ("--config=experiments/imagenet2012.py:smoke", "--synthetic", "--json", f"--cache_dir={tmp_path}")
  result = run_module("alexnet_jax.benchmark_input", *args, "--synthetic_images=48", "--timed_images=32")
  assert result.returncode == 0, result.stderr[-3000:]
  line = json.loads(result.stdout.strip().splitlines()[-1])
  assert line["images_per_second"] > 0 and line["cpu_us_per_image"] > 0 and line["cores"] == os.cpu_count()
  assert (line["store"], line["route"], line["timed_images"]) == (True, "streamed", 32)
  assert line["decode_cpu_us_per_image"] > 0 and 0 < line["reader_overhead_us_per_image"]
  cores = len(os.sched_getaffinity(0))
  counts = sorted(map(int, line["images_per_second_by_readers"]))  # 1, 2, 4, ... and the cores
  assert line["read_threads"] == cores == counts[-1] and counts[0] == 1
  assert all(count & (count - 1) == 0 for count in counts[:-1])
  assert all(rate > 0 for rate in line["images_per_second_by_readers"].values())
  assert line["overhead_ratio"] == pytest.approx(line["cpu_us_per_image"] / line["decode_cpu_us_per_image"], rel=1e-2)
  assert store.is_prepared(os.path.join(tmp_path, "imagenet2012_76", store.VERSION))


@pytest.mark.slow
def test_prepare_store_without_imagenet_says_where_to_put_the_tars(tmp_path):
  args = (f"--config.data_dir={tmp_path}", f"--config.manual_dir={tmp_path / 'manual'}")
  result = run_module("alexnet_jax.data.prepare_store", "--config=experiments/imagenet2012.py", *args)
  assert result.returncode == 1
  assert "\nerror: imagenet2012 is not prepared in " in result.stderr and "Traceback" not in result.stderr
  assert f"ILSVRC2012_img_val.tar (as downloaded, not extracted) into {tmp_path / 'manual'}" in result.stderr
