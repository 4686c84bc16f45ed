"""The ``image_folder`` dataset: a folder of class sub-folders prepared into a store like ImageNet's,
its held-out split, its facts read from the store, and the one-line errors of a folder that cannot be one."""

import hashlib
import os

import numpy as np
import pytest
from support import picture_folder

from alexnet_jax.data import datasets, image_folder, input_options, input_spec, options, prepare_store, registry, store
from alexnet_jax.rules import ConfigError
from alexnet_jax.train import validation
from experiments import imagenet2012


def folder_config(folder, data_dir, **fields):
  """The :smoke ImageNet recipe reading ``folder`` (76x76 squares, 3 classes) with its store in ``data_dir``."""
  config = imagenet2012.get_config("smoke")
  config.dataset = "image_folder"
  config.image_folder = str(folder)
  config.data_dir = str(data_dir)
  config.model.num_classes = len(picture_folder.COLOURS)
  for name, value in fields.items():
    config[name] = value
  return config


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
  return picture_folder.write(tmp_path_factory.mktemp("pictures"))


@pytest.fixture(scope="module")
def prepared(pictures, tmp_path_factory):
  """(config, store path) of the pictures' store, prepared through ``datasets.prepare`` as a run does."""
  config = folder_config(pictures, tmp_path_factory.mktemp("tfds"))
  builder = datasets.prepare(config)
  return config, os.fspath(builder.data_dir)


def test_the_holdout_is_the_sha256_of_class_and_file_name_below_the_fraction():
  fraction = int.from_bytes(hashlib.sha256(b"cat/a.jpg").digest()[:8], "big") / 2**64
  assert image_folder.held_out("cat", "a.jpg", fraction + 1e-9)
  assert not image_folder.held_out("cat", "a.jpg", fraction - 1e-9)
  assert not image_folder.held_out("cat", "a.jpg", 0.0)
  picked = [image_folder.held_out("c", f"{index}.png", 0.25) for index in range(4000)]
  assert abs(np.mean(picked) - 0.25) < 0.03


def test_the_store_holds_both_splits_with_the_sub_folders_as_classes_and_records_the_folder(prepared, pictures):
  config, path = prepared
  builder = store.load(path)
  assert builder.info.features["label"].names == sorted(picture_folder.COLOURS)
  folder = image_folder.read(pictures)
  expected = image_folder.split(folder, config.holdout_fraction)
  assert {name: s.num_examples for name, s in builder.info.splits.items()} == {k: len(v) for k, v in expected.items()}
  assert 0 < len(expected["validation"]) < len(expected["train"])
  info = store.read_info(path)
  assert info["source"] == "image_folder" and info["folder"] == os.path.realpath(pictures)
  assert info["holdout_fraction"] == 0.1 and info["files"] == folder.digest()
  example = builder.as_data_source("validation")[0]
  assert example["file_name"].decode().split("/")[0] in picture_folder.COLOURS


def test_the_entrys_facts_and_the_input_spec_come_from_the_store(prepared):
  config, path = prepared
  facts = registry.get("image_folder").facts(config)
  stats = store.read_stats(path)
  assert facts.train_examples == int(stats["count"]) == store.load(path).info.splits["train"].num_examples
  np.testing.assert_allclose(facts.mean, stats["channel_mean"], rtol=1e-6)
  # Each colour class's channel mean over the three colours (noise averages out), on [0, 1] pixels.
  np.testing.assert_allclose(facts.mean, np.mean(list(picture_folder.COLOURS.values()), axis=0) / 255, atol=0.05)
  assert all(0.2 < s < 0.5 for s in facts.std)  # the colours' spread across classes, noise included
  spec = input_spec.build(config)
  assert spec.num_classes == 3 and spec.label_names == tuple(sorted(picture_folder.COLOURS))
  assert spec.mean_image and spec.image_channels == 3 == options.image_channels("image_folder")
  config.input.normalization = "standardize"
  assert options.mean_std(config) == (facts.mean, facts.std)


def test_a_prepared_store_is_kept_and_one_from_other_pictures_is_refused_in_one_line(prepared, tmp_path):
  config, path = prepared
  assert datasets.prepare(config).data_dir == store.load(path).data_dir  # complete: kept as it is
  other = picture_folder.write(tmp_path / "other", per_class=3, seed=1)
  with pytest.raises(prepare_store.StoreError) as refused:
    datasets.prepare(folder_config(other, config.data_dir))
  assert f"was made from the folder {os.path.realpath(config.image_folder)}, not {os.path.realpath(other)}" in str(
    refused.value
  )
  with pytest.raises(prepare_store.StoreError, match="holds out holdout_fraction=0.1, not this run's 0.2"):
    datasets.prepare(folder_config(config.image_folder, config.data_dir, holdout_fraction=0.2))


def test_changed_pictures_refuse_the_old_store(tmp_path):
  folder = picture_folder.write(tmp_path / "pictures", per_class=4)
  config = folder_config(folder, tmp_path / "tfds", holdout_fraction=0.0)
  prepare_store.prepare(config, workers=1, progress=False)
  os.remove(os.path.join(folder, "red", "red_001.jpg"))
  with pytest.raises(prepare_store.StoreError, match=r"the pictures in .* changed since the store .* was made"):
    prepare_store.prepare(config, workers=1, progress=False)


def test_an_unreadable_picture_is_skipped_and_named_and_a_class_of_none_is_one_error(tmp_path):
  folder = picture_folder.write(tmp_path / "pictures", per_class=4)
  bad = os.path.join(folder, "green", "green_002.jpg")
  with open(bad, "wb") as f:
    f.write(b"not a picture")
  config = folder_config(folder, tmp_path / "tfds", holdout_fraction=0.0)
  path = prepare_store.prepare(config, workers=1, progress=False)
  assert store.read_info(path)["skipped"] == {"train": [f"{os.path.realpath(bad)} (class green)"]}
  assert store.load(path).info.splits["train"].num_examples == 11

  for name in os.listdir(os.path.join(folder, "red")):
    with open(os.path.join(folder, "red", name), "wb") as f:
      f.write(b"broken")
  with pytest.raises(prepare_store.StoreError, match="the class 'red' has no readable picture in the train split"):
    prepare_store.prepare(folder_config(folder, tmp_path / "tfds2", holdout_fraction=0.0), workers=1, progress=False)


def test_a_folder_that_cannot_be_a_dataset_is_one_line_naming_it(tmp_path):
  missing = tmp_path / "missing"
  with pytest.raises(image_folder.FolderError, match=f"config.image_folder={missing} is not a folder"):
    image_folder.read(str(missing))
  (tmp_path / "flat").mkdir()
  (tmp_path / "flat" / "a.jpg").write_bytes(b"")
  with pytest.raises(image_folder.FolderError, match="holds no class sub-folders"):
    image_folder.read(str(tmp_path / "flat"))
  (tmp_path / "flat" / "cat").mkdir()
  (tmp_path / "flat" / "cat" / ".DS_Store").write_bytes(b"")
  with pytest.raises(image_folder.FolderError, match="the class folder 'cat' holds no picture"):
    image_folder.read(str(tmp_path / "flat"))
  folder = image_folder.read(picture_folder.write(tmp_path / "pictures", per_class=2))
  with pytest.raises(image_folder.FolderError, match="config.holdout_fraction=0.999 holds out every picture of"):
    image_folder.split(folder, 0.999)


@pytest.mark.parametrize(
  ("fields", "words"),
  [
    ({"image_folder": ""}, "config.image_folder is empty but config.dataset='image_folder' reads its pictures"),
    ({"dataset": "cifar10"}, "config.image_folder='PICTURES' is read only with config.dataset='image_folder'"),
    ({"holdout_fraction": 1.0}, "config.holdout_fraction"),
  ],
)
def test_the_folder_fields_go_with_their_dataset(fields, words):
  config = folder_config("PICTURES", "tfds", **fields)
  with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
    input_options.check(config)
  validation.validate(folder_config("PICTURES", "tfds"), device_count=1)
