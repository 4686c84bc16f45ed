"""Fashion-MNIST from Debian-style IDX files into TFDS (ArrayRecord), offline; the old TFRecord form
converted again; the instructions when data is missing."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from support import idx_files

from alexnet_jax.data import datasets, fashion_mnist_offline, input_spec, loader, registry
from experiments import fashion_mnist

NUM_TRAIN, NUM_TEST = 30, 23


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory):
  """Four IDX files like Debian's: random train images; test image i is filled with the value 10 i."""
  directory = tmp_path_factory.mktemp("fashion-mnist")
  rng = np.random.default_rng(0)
  splits = {
    "train": (rng.integers(0, 256, (NUM_TRAIN, 28, 28)), np.arange(NUM_TRAIN) % 10),
    "test": (np.broadcast_to(10 * np.arange(NUM_TEST)[:, None, None], (NUM_TEST, 28, 28)), np.arange(NUM_TEST) % 10),
  }
  for split, (images, labels) in splits.items():
    images_file, labels_file = fashion_mnist_offline.SPLIT_FILES[split]
    idx_files.write_idx(directory / images_file, images)
    idx_files.write_idx(directory / labels_file, labels)
  return str(directory)


def sorted_examples(images, labels):
  """(images, labels) in a canonical order, to compare datasets that TFDS stored shuffled."""
  flat = images.reshape(len(images), -1)
  order = np.lexsort(np.column_stack([flat, labels]).T)
  return flat[order], labels[order]


def config_for(data_dir, dataset="fashion_mnist"):
  config = fashion_mnist.get_config("smoke")
  config.dataset = dataset
  config.data_dir = str(data_dir)
  config.eval_max_examples = -1
  config.input.resize_size = config.input.crop_size = 28  # the pixels pass through unchanged
  config.input.random_flip = False
  config.batch_size = 6
  return config


@pytest.fixture(scope="module")
def built_dir(source_dir, tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  fashion_mnist_offline.prepare_fashion_mnist(str(data_dir), source_dir)
  return data_dir


def test_the_catalog_builder_loads_what_was_built(source_dir, built_dir, tmp_path):
  builder = tfds.builder("fashion_mnist", data_dir=str(built_dir))
  official = tfds.builder("fashion_mnist", data_dir=str(tmp_path)).info  # from TFDS's code
  assert type(builder) is tfds.builder_cls("fashion_mnist") and builder.is_prepared()
  assert builder.info.version == official.version == "3.0.1"
  assert builder.info.features.to_json() == official.features.to_json()
  assert builder.info.supervised_keys == official.supervised_keys
  for split, size in (("train", NUM_TRAIN), ("test", NUM_TEST)):
    assert builder.info.splits[split].num_examples == size
    stored = list(builder.as_data_source(split=split))  # random access, no TensorFlow
    stored_images = np.stack([example["image"] for example in stored])
    stored_labels = np.array([example["label"] for example in stored])
    images, labels = fashion_mnist_offline.read_split(source_dir, split)
    for got, expected in zip(sorted_examples(stored_images, stored_labels), sorted_examples(images, labels)):
      np.testing.assert_array_equal(got, expected)


def test_the_loader_builds_it_when_missing_and_shares_eval_over_processes(source_dir, tmp_path, monkeypatch):
  monkeypatch.setattr(fashion_mnist_offline, "DEBIAN_DIR", source_dir)
  config = config_for(tmp_path)
  datasets.prepare(config)
  spec = input_spec.build(config)
  assert (spec.num_train, spec.num_eval, spec.num_classes) == (NUM_TRAIN, NUM_TEST, 10)
  assert tfds.builder("fashion_mnist", data_dir=str(tmp_path)).info.file_format.value == "array_record"
  seen, batch_counts = [], set()
  for process in range(3):  # batch 6 -> 2 per process; 23 examples -> 4 global batches, the last one 5 real
    batches = list(loader.eval_batches(spec, shard_index=process, shard_count=3))
    batch_counts.add(len(batches))
    for batch in batches:
      real = batch["mask"] == 1
      seen += list(ids_of_test_images(batch["image"][real]))
      np.testing.assert_array_equal(batch["label"][real], ids_of_test_images(batch["image"][real]) % 10)
  assert batch_counts == {4}
  assert sorted(seen) == list(range(NUM_TEST))


def test_building_the_spec_only_reads_preparing_is_the_step_before(source_dir, tmp_path, monkeypatch):
  monkeypatch.setattr(fashion_mnist_offline, "DEBIAN_DIR", source_dir)  # convertible, but build() must not
  data_dir = tmp_path / "tfds"
  with pytest.raises(datasets.DatasetUnavailableError, match=f"fashion_mnist is not prepared .* {data_dir}: prepare"):
    input_spec.build(config_for(data_dir))
  assert not data_dir.exists()
  assert datasets.prepare(config_for(data_dir)).info.splits["train"].num_examples == NUM_TRAIN
  assert input_spec.build(config_for(data_dir)).num_train == NUM_TRAIN


def test_train_processes_read_disjoint_parts_of_each_global_batch(built_dir):
  config = config_for(built_dir)
  config.train_split = "test"  # identifiable images; 23 -> 3 global batches of 6 in an epoch
  shares = []
  for process in range(2):
    batches = loader.train_batches(input_spec.build(config), shard_index=process, shard_count=2)
    ids = np.concatenate([ids_of_test_images(next(batches)["image"]) for _ in range(3)])
    assert len(set(ids)) == 9
    shares.append(set(ids))
  assert not shares[0] & shares[1]


def ids_of_test_images(squares):
  """Recovers i from a uint8 test image filled with the value 10 i."""
  return np.rint(squares.reshape(len(squares), -1).mean(axis=1) / 10).astype(int)


def test_a_copy_in_the_old_tfrecord_form_is_moved_aside_and_converted_again(source_dir, tmp_path, monkeypatch):
  monkeypatch.setattr(fashion_mnist_offline, "DEBIAN_DIR", source_dir)
  old = fashion_mnist_offline.DebianFashionMnist(source_dir=source_dir, data_dir=str(tmp_path), file_format="tfrecord")
  old.download_and_prepare()
  version_dir = os.path.join(tmp_path, "fashion_mnist", "3.0.1")
  assert any(".tfrecord-" in name for name in os.listdir(version_dir))
  datasets.prepare(config_for(tmp_path))
  spec = input_spec.build(config_for(tmp_path))
  assert spec.num_train == NUM_TRAIN and any(".array_record-" in name for name in os.listdir(version_dir))
  assert any(".tfrecord-" in name for name in os.listdir(tmp_path / "fashion_mnist-3.0.1.tfrecord"))


def test_without_its_source_files_the_old_form_is_one_error_with_the_command(source_dir, tmp_path, monkeypatch):
  old = fashion_mnist_offline.DebianFashionMnist(source_dir=source_dir, data_dir=str(tmp_path), file_format="tfrecord")
  old.download_and_prepare()  # stands in for any TFDS dataset prepared as TFRecord
  monkeypatch.setattr(fashion_mnist_offline, "DEBIAN_DIR", str(tmp_path / "not-installed"))
  with pytest.raises(datasets.DatasetUnavailableError, match="was prepared as tfrecord, which only TensorFlow reads"):
    datasets.prepare(config_for(tmp_path))


def test_read_idx_rejects_other_files(tmp_path):
  idx_files.write_idx(tmp_path / "labels.gz", np.zeros(4))
  with pytest.raises(ValueError, match="expected 2051"):
    fashion_mnist_offline.read_idx(str(tmp_path / "labels.gz"), ndim=3)


@pytest.fixture
def offline(monkeypatch):
  """TFDS downloads fail at once, as they do here after minutes of retries."""

  def fail(self, *args, **kwargs):
    raise ConnectionError(f"cannot reach the download host of {self.name}")

  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fail)


def test_missing_fashion_mnist_says_which_package_to_install(tmp_path, monkeypatch, offline):
  monkeypatch.setattr(fashion_mnist_offline, "DEBIAN_DIR", str(tmp_path / "not-installed"))
  with pytest.raises(datasets.DatasetUnavailableError) as error:
    datasets.prepare(config_for(tmp_path / "tfds"))
  message = str(error.value)
  assert "apt-get install dataset-fashion-mnist" in message
  assert "/usr/share/datasets/fashion-mnist" in message and str(tmp_path / "tfds") in message
  assert "python -m alexnet_jax.data.fashion_mnist_offline" in message
  assert isinstance(error.value.__cause__, ConnectionError)


def test_missing_cifar10_says_it_needs_a_download_or_a_prepared_data_dir(tmp_path, offline):
  with pytest.raises(datasets.DatasetUnavailableError, match="needs one online run.*config.data_dir"):
    datasets.prepare(config_for(tmp_path, "cifar10"))


def test_missing_imagenet_names_the_tars_and_where_they_go(tmp_path):
  config = config_for(tmp_path / "tfds", "imagenet2012")  # TFDS itself fails: nothing is mocked
  with pytest.raises(datasets.DatasetUnavailableError) as error:
    datasets.prepare(config)
  assert all(
    s in str(error.value)
    for s in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", str(tmp_path / "tfds" / "downloads" / "manual"))
  )
  config.manual_dir = str(tmp_path / "my-tars")
  with pytest.raises(datasets.DatasetUnavailableError, match=f"into {config.manual_dir} "):
    datasets.prepare(config)


@pytest.mark.skipif(not fashion_mnist_offline.has_source_files(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_pixel_stats_are_those_of_the_real_train_split():
  images, _ = fashion_mnist_offline.read_split(fashion_mnist_offline.DEBIAN_DIR, "train")
  counts = np.bincount(images.ravel(), minlength=256)  # a histogram: exact and fast
  values = np.arange(256) / 255.0
  mean = counts @ values / counts.sum()
  std = np.sqrt(counts @ (values - mean) ** 2 / counts.sum())
  entry = registry.get("fashion_mnist")
  np.testing.assert_allclose([mean, std], [entry.mean[0], entry.std[0]], atol=1e-7)
