"""The prepared store: fake ILSVRC-2012 tars through TFDS's own imagenet2012 builder, the
preparation (squares, statistics, resume), and the training stream into train steps."""

import json
import os
import subprocess
import sys

import fake_ilsvrc
import jax
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from alexnet_jax.data import augment, datasets, pipeline, prepare_store, store
from alexnet_jax.train import loop
from experiments import imagenet2012


def fake_imagenet_config(tmp_path):
  config = imagenet2012.get_config("smoke")  # 67x67 crops of 76x76 squares, batch 16
  config.data_dir = str(tmp_path / "tfds")
  config.manual_dir = str(tmp_path / "manual")
  return config


def source_squares(source, size):
  """{file_name: (uint8 central square, label)} computed straight from the TFDS source."""
  squares = {}
  for example in source.as_dataset(split="train").as_numpy_iterator():
    square = augment.to_uint8(augment.central_square(tf.constant(example["image"]), size)).numpy()
    squares[example["file_name"].decode()] = (square, example["label"])
  return squares


def test_fake_ilsvrc_tars_become_a_store_that_trains(tmp_path):
  labels = fake_ilsvrc.write_tars(str(tmp_path / "manual"))
  config = fake_imagenet_config(tmp_path)
  size = config.input.resize_size
  path = prepare_store.prepare(config, workers=2, images_per_shard=8, progress=False)

  source = tfds.builder("imagenet2012", data_dir=config.data_dir)  # built by TFDS from the tars
  assert {name: s.num_examples for name, s in source.info.splits.items()} == {"train": 20, "validation": 5}
  expected = source_squares(source, size)
  names = source.info.features["label"].names
  assert {name: names[label] for name, (_, label) in expected.items()} == labels

  built = store.load(path)
  assert path == os.path.join(config.data_dir, f"imagenet2012_{size}", "1.0.0")
  assert {name: s.num_examples for name, s in built.info.splits.items()} == {"train": 20, "validation": 5}
  assert len(built.info.splits["train"].shard_lengths) == 3  # 20 images, 8 per shard
  for example in built.as_dataset(split="train").as_numpy_iterator():
    square, label = expected[example["file_name"].decode()]
    assert example["image"].shape == (size, size, 3) and example["label"] == label
    reencoded = tf.io.decode_jpeg(tf.io.encode_jpeg(square, quality=90)).numpy()
    np.testing.assert_array_equal(example["image"], reencoded)  # the exact square, JPEG-encoded at 90
  grey, cmyk = expected[fake_ilsvrc.GREY_NAME][0], expected[fake_ilsvrc.CMYK_NAME][0]
  assert np.array_equal(grey[..., 0], grey[..., 2]) and not np.array_equal(cmyk[..., 0], cmyk[..., 2])

  stats = store.read_stats(path)
  squares = np.stack([square for square, _ in expected.values()]).astype(np.float64)
  np.testing.assert_allclose(stats["mean_image"], squares.mean(axis=0) / 255, atol=1e-6)
  np.testing.assert_allclose(stats["channel_mean"], squares.mean(axis=(0, 1, 2)) / 255, atol=1e-6)
  covariance = np.cov(squares.reshape(-1, 3).T / 255, bias=True)
  np.testing.assert_allclose(stats["eigenvalues"], np.linalg.eigvalsh(covariance)[::-1], rtol=1e-6)
  np.testing.assert_allclose(
    covariance @ stats["eigenvectors"], stats["eigenvectors"] * stats["eigenvalues"], atol=1e-9
  )

  # Interrupted before the end: only the missing shard is written again.
  shards = sorted(f for f in os.listdir(path) if ".tfrecord-" in f)
  mtimes = {f: os.stat(os.path.join(path, f)).st_mtime_ns for f in shards}
  for name in (shards[0], "dataset_info.json", store.STATS_FILE):
    os.remove(os.path.join(path, name))
  assert not store.is_prepared(path)
  prepare_store.prepare(config, workers=1, images_per_shard=8, progress=False)
  assert store.is_prepared(path)
  assert [f for f in shards if os.stat(os.path.join(path, f)).st_mtime_ns != mtimes.get(f)] == [shards[0]]
  np.testing.assert_array_equal(store.read_stats(path)["mean_image"], stats["mean_image"])

  # The ImageNet config reads the store: uint8 views, its mean image, and a few train steps.
  assert os.fspath(datasets.prepared_builder(config).data_dir) == path
  batch = next(pipeline.create_train_iterator(config, seed=0))
  assert batch["image"].dtype == np.uint8 and batch["image"].shape == (16, 67, 67, 3)
  np.testing.assert_array_equal(pipeline.device_preprocessing(config).mean, stats["mean_image"])
  summary = loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert summary["step"] == config.num_train_steps and np.isfinite(summary["train_loss"])
  assert summary["eval_count"] == 5


# The device path (uint8 views, float work in the train step) against the host path, on a small store.


@pytest.fixture(scope="module")
def synthetic_store(tmp_path_factory):
  """A 24-image synthetic imagenet2012 and its store of 76x76 squares (the :smoke sizes)."""
  from alexnet_jax.yardsticks import synthetic_imagenet

  config = imagenet2012.get_config("smoke")
  config.data_dir = str(tmp_path_factory.mktemp("tfds"))
  config.input.shuffle_buffer = 8
  config.batch_size = 8
  synthetic_imagenet.prepare(config.data_dir, num_train=24, num_validation=8)
  prepare_store.prepare(config, workers=1, progress=False)
  return config


def views(config, *, seed=0, steps=4, start_step=0):
  """The normalised float views of the train stream, finished on the device where configured."""
  batches = pipeline.create_train_iterator(config, seed=seed, start_step=start_step)
  finish = pipeline.device_preprocessing(config)
  out = []
  for _ in range(steps):
    batch = next(batches)
    images = batch["image"] if finish is None else np.asarray(jax.jit(finish)(batch))
    out.append((images, batch["label"]))
  return out


def host_and_device(config):
  host = config.copy_and_resolve_references()
  host.input.augment_on = "host"
  return views(host), views(config)


def test_device_views_equal_the_host_views_from_the_same_draws(synthetic_store):
  """In memory (a small store): the same pixels, crops, flips, colour noise and mean image."""
  host, device = host_and_device(synthetic_store)
  for (host_images, host_labels), (device_images, device_labels) in zip(host, device):
    np.testing.assert_array_equal(host_labels, device_labels)
    np.testing.assert_allclose(device_images, host_images, atol=2e-3)  # raw-pixel scale (x 255)
  assert np.abs(host[0][0]).max() > 50


def test_streamed_store_views_decode_only_the_patch(synthetic_store, monkeypatch):
  """Streamed (as the full ImageNet): decode_and_crop_jpeg differs from a full decode only at a few
  border pixels (chroma upsampling), never in the crop, flip or noise."""
  monkeypatch.setattr(pipeline, "IN_MEMORY_LIMIT_BYTES", 0)
  host, device = host_and_device(synthetic_store)
  for (host_images, _), (device_images, _) in zip(host, device):
    differs = np.abs(device_images - host_images) > 1.5  # more than 1.5 grey levels
    assert differs.mean() < 0.02, differs.mean()
    np.testing.assert_allclose(np.median(device_images - host_images), 0, atol=1e-3)


def test_device_path_resumes_exactly(synthetic_store, monkeypatch):
  monkeypatch.setattr(pipeline, "IN_MEMORY_LIMIT_BYTES", 0)
  unbroken = views(synthetic_store, seed=5, steps=7)
  for start_step in (2, 3, 5):  # mid-epoch (3 batches of 8 per epoch), at an epoch's end, in epoch 2
    for (a, la), (b, lb) in zip(
      unbroken[start_step:], views(synthetic_store, seed=5, steps=7 - start_step, start_step=start_step)
    ):
      np.testing.assert_array_equal(la, lb)
      np.testing.assert_array_equal(a, b)


# The two commands, as a user runs them.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_module(module, *args, timeout=300):
  return subprocess.run(
    [sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
  )


def test_benchmark_input_synthetic_prints_one_json_line(tmp_path):
  args = ("--config=experiments/imagenet2012.py:smoke", "--synthetic", "--json", f"--cache_dir={tmp_path}")
  result = run_module("alexnet_jax.benchmark_input", *args, "--synthetic_images=48", "--timed_images=32")
  assert result.returncode == 0, result.stderr[-3000:]
  line = json.loads(result.stdout.strip().splitlines()[-1])
  assert line["images_per_second"] > 0 and line["cpu_us_per_image"] > 0 and line["cores"] == os.cpu_count()
  assert (line["store"], line["augment_on"], line["timed_images"]) == (True, "device", 32)
  assert store.is_prepared(os.path.join(tmp_path, "imagenet2012_76", store.VERSION))


def test_prepare_store_without_imagenet_says_where_to_put_the_tars(tmp_path):
  args = (f"--config.data_dir={tmp_path}", f"--config.manual_dir={tmp_path / 'manual'}")
  result = run_module("alexnet_jax.data.prepare_store", "--config=experiments/imagenet2012.py", *args)
  assert result.returncode == 1
  assert "\nerror: imagenet2012 is not prepared in " in result.stderr and "Traceback" not in result.stderr
  assert f"ILSVRC2012_img_val.tar (as downloaded, not extracted) into {tmp_path / 'manual'}" in result.stderr


def test_reading_parses_only_image_and_label_with_the_same_values(synthetic_store):
  builder = datasets.prepared_builder(synthetic_store)
  assert "file_name" in builder.info.features
  read = list(pipeline._read(builder, "train", shuffle_files=False).as_numpy_iterator())
  full = builder.as_dataset(split="train", decoders={"image": tfds.decode.SkipDecoding()}, shuffle_files=False)
  full = list(full.as_numpy_iterator())
  assert len(read) == len(full) == 24
  for a, b in zip(read, full):
    assert set(a) == {"image", "label"} and a["image"] == b["image"] and a["label"] == b["label"]
