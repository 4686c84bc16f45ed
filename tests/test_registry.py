"""The dataset registry (``data/registry.py``): each entry's facts, its converter's functions, and the
one place a dataset's name is looked up."""

import dataclasses
import importlib

import pytest

from alexnet_jax.data import datasets, options, registry
from experiments import fashion_mnist


def test_each_entry_has_one_mean_and_std_per_channel_of_grey_or_rgb_images_or_takes_them_from_its_store():
  for entry in registry.DATASETS.values():
    if entry.own_store is not None:  # its facts are its store's (tests/test_image_folder.py)
      assert (entry.mean, entry.std, entry.train_examples, entry.channels) == (None, None, None, 3), entry.name
      continue
    assert entry.channels in (1, 3) and len(entry.std) == entry.channels, entry.name
    assert all(0 < value < 1 for value in (*entry.mean, *entry.std)), entry.name
    assert entry.train_examples > 0
  assert options.DATASETS == registry.NAMES == ("fashion_mnist", "cifar10", "imagenet2012", "image_folder")
  assert options.image_channels("fashion_mnist") == 1 and options.image_channels("cifar10") == 3


def test_an_unknown_name_is_one_error_naming_the_field_and_the_known_ones():
  with pytest.raises(ValueError, match=r"config.dataset='mnist' is not supported; known: \['cifar10', "):
    registry.get("mnist")


def test_every_deferred_function_exists_in_its_module():
  """The registry names converters by module and function (it imports no TFDS): a typo fails here."""
  deferred = [
    value
    for entry in registry.DATASETS.values()
    for value in (
      entry.how_to_get,
      *(dataclasses.astuple(entry.local_copy) if entry.local_copy else ()),
      *(dataclasses.astuple(entry.own_store) if entry.own_store else ()),
    )
    if isinstance(value, registry.Deferred)
  ]
  assert deferred
  for function in deferred:
    assert callable(getattr(importlib.import_module(function.module), function.function)), function


def test_prepare_follows_the_entry_a_local_copy_is_converted_before_any_download(tmp_path, monkeypatch):
  """What a new dataset's entry does: its local copy's ``convert`` is what prepare() runs."""
  converted = []
  local_copy = registry.LocalCopy(
    installed=lambda: True, convert=lambda data_dir: converted.append(data_dir) or "built"
  )
  entry = dataclasses.replace(registry.get("fashion_mnist"), local_copy=local_copy)
  monkeypatch.setitem(registry.DATASETS, "fashion_mnist", entry)
  config = fashion_mnist.get_config("smoke")
  config.data_dir = str(tmp_path / "tfds")
  assert datasets.prepare(config) == "built" and converted == [config.data_dir]


def test_how_to_get_joins_the_failure_and_the_entrys_words(tmp_path):
  class Builder:
    data_dir_root = str(tmp_path)

  message = datasets.how_to_get(registry.get("cifar10"), Builder, None, ConnectionError("offline"))
  assert message.startswith(f"cifar10 is not prepared in {tmp_path} and TFDS could not prepare it (ConnectionError")
  assert "\nCIFAR-10 needs one online run" in message
