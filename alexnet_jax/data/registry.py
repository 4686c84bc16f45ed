"""Every dataset the pipeline knows, one :class:`Dataset` entry each: what the rest of the code asks
about a dataset by its name, answered in one place.

An entry holds the dataset's facts (pixel statistics, channels, the size of its train split) and
how it gets onto the disk: the local copy converted offline before TFDS would download it, whether a
run reads it from a prepared store only (or, for the user's own pictures, a store that is all there is
of it, its facts read from that store), and the words that tell a user how to get it or prepare it
again. ``datasets.prepare`` follows the entry; config validation, the input spec and the recipes
read its facts. Adding a dataset is adding an entry to :data:`DATASETS`.

This module imports no TFDS: the validator reads it. What converts a local copy lives in the
dataset's own module, imported only when it runs (:class:`Deferred`).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Deferred:
  """A function of another module, imported when first called (keeps this module free of TFDS)."""

  module: str
  function: str

  def __call__(self, *args):
    return getattr(importlib.import_module(self.module), self.function)(*args)


@dataclasses.dataclass(frozen=True)
class LocalCopy:
  """Files on this machine a dataset is converted from, offline, before TFDS is asked to download it."""

  installed: Callable[[], bool]  # whether the files are there
  convert: Callable[[str], object]  # data_dir -> the TFDS builder of the converted dataset


@dataclasses.dataclass(frozen=True)
class Facts:
  """What a dataset's pixels and size are: fixed in its entry, or read from its own store."""

  mean: tuple[float, ...]  # per channel, of the train split's pixels in [0, 1] (one channel: grey)
  std: tuple[float, ...]
  train_examples: int  # in the full "train" split, for recipes that count in epochs


@dataclasses.dataclass(frozen=True)
class OwnStore:
  """A dataset that exists only as a store made from the user's own files (``prepare_store``): preparing
  it writes (or checks) that store, and its facts are the store's, not constants of the entry."""

  prepare: Callable[[object], str]  # config -> the store's path, written if missing, checked if there
  facts: Callable[[object], Facts]  # config -> the prepared store's pixel statistics and train size


STORE_CHANNELS = 3  # prepare_store keeps every image as an RGB square


@dataclasses.dataclass(frozen=True)
class Dataset:
  """One dataset: its facts and how a run gets it (see the module docstring)."""

  name: str
  mean: tuple[float, ...] | None  # per channel, of the train split's pixels in [0, 1] (one channel: grey)
  std: tuple[float, ...] | None  # None, with train_examples: the facts of its own store (own_store)
  train_examples: int | None  # in the full "train" split (TFDS's count), for recipes that count in epochs
  # (data root, manual dir) -> what to do when TFDS cannot prepare it: the lines after the failure.
  how_to_get: Callable[[str, str | None], str]
  reprepare: str = "TFDS downloads and prepares it again"  # what rerunning does once damaged files are moved away
  local_copy: LocalCopy | None = None
  # With config.input.use_store, runs read only a prepared store: (config, data root, store dir) -> what
  # to do when there is none. None: the dataset itself is prepared and read where no store is.
  store_missing: Callable[[object, str, str], str] | None = None
  own_store: OwnStore | None = None

  @property
  def channels(self) -> int:
    """1 (grey) or 3 (RGB): as many as its pixel statistics have (a store's squares are RGB)."""
    return STORE_CHANNELS if self.own_store is not None else len(self.mean)

  def facts(self, config) -> Facts:
    """Its pixel statistics and train size: the entry's, or its own prepared store's for ``config``."""
    if self.own_store is not None:
      return self.own_store.facts(config)
    return Facts(self.mean, self.std, self.train_examples)


def _imagenet_manual_dir(manual_dir: str | None, root: str) -> str:
  return os.path.expanduser(manual_dir or os.path.join(root, "downloads", "manual"))


def _imagenet_how_to_get(root: str, manual_dir: str | None) -> str:
  return (
    "ImageNet must be downloaded by hand: register at"
    " https://image-net.org/download-images, then put ILSVRC2012_img_train.tar and"
    " ILSVRC2012_img_val.tar (as downloaded, not extracted)"
    f" into {_imagenet_manual_dir(manual_dir, root)} (or point --config.manual_dir at the"
    f" directory holding them) and rerun; the first run converts them into {root}."
  )


def _imagenet_store_missing(config, root: str, store_dir: str) -> str:
  """``prepare_store`` writes the store from the tars (TFDS's own conversion would need TensorFlow, and
  hours more, before the store could even start)."""
  return (
    f"imagenet2012 has no prepared store in {store_dir}. Register at https://image-net.org/download-images,"
    " put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (as downloaded, not extracted) into"
    f" {_imagenet_manual_dir(config.manual_dir, root)} (or point --config.manual_dir at the directory holding"
    " them), then write the store once with\n"
    f"  python -m alexnet_jax.data.prepare_store --config=experiments/imagenet2012.py --config.data_dir={root}"
    f" --config.input.resize_size={config.input.resize_size} --config.input.resize={config.input.resize}\n"
    "and rerun (docs/imagenet.md: about 1.7 core-hours per million images)."
  )


def _cifar10_how_to_get(root: str, manual_dir: str | None) -> str:
  del root, manual_dir  # the same words wherever it is missing
  return (
    "CIFAR-10 needs one online run (TFDS downloads it from www.cs.toronto.edu), or"
    " --config.data_dir pointing at a directory where it is already prepared (e.g. a copy of"
    " ~/tensorflow_datasets/cifar10 from an online machine)."
  )


def _image_folder_how_to_get(root: str, manual_dir: str | None) -> str:
  del root, manual_dir  # the folder is the user's
  return (
    "image_folder is made from --config.image_folder=FOLDER, a folder with one sub-folder of pictures per class"
    " (docs/pretrained.md, 'Fine-tuning on your own folder')."
  )


_FASHION_MNIST_OFFLINE = "alexnet_jax.data.fashion_mnist_offline"
_IMAGE_FOLDER = "alexnet_jax.data.image_folder"

DATASETS = {
  entry.name: entry
  for entry in (
    Dataset(
      name="fashion_mnist",
      # Computed once from Debian's train-images-idx3-ubyte.gz (60,000 images; tests recheck it).
      mean=(0.2860406,),
      std=(0.3530242,),
      train_examples=60_000,
      how_to_get=Deferred(_FASHION_MNIST_OFFLINE, "how_to_get"),
      reprepare="it is converted again from Debian's files, or downloaded",
      local_copy=LocalCopy(
        installed=Deferred(_FASHION_MNIST_OFFLINE, "debian_copy_installed"),
        convert=Deferred(_FASHION_MNIST_OFFLINE, "convert_debian_copy"),
      ),
    ),
    Dataset(
      name="cifar10",
      mean=(0.4913997, 0.4821584, 0.4465309),
      std=(0.2470322, 0.2434851, 0.2615877),
      train_examples=50_000,
      how_to_get=_cifar10_how_to_get,
    ),
    Dataset(
      name="imagenet2012",
      mean=(0.485, 0.456, 0.406),
      std=(0.229, 0.224, 0.225),
      train_examples=1_281_167,
      how_to_get=_imagenet_how_to_get,
      reprepare="it is converted again from the tars in the manual directory, which takes hours",
      store_missing=_imagenet_store_missing,
    ),
    Dataset(
      name="image_folder",
      mean=None,  # the facts of the store made from config.image_folder
      std=None,
      train_examples=None,
      how_to_get=_image_folder_how_to_get,
      reprepare="it is prepared again from config.image_folder",
      own_store=OwnStore(
        prepare=Deferred("alexnet_jax.data.prepare_store", "prepare_for_run"), facts=Deferred(_IMAGE_FOLDER, "facts")
      ),
    ),
  )
}
NAMES = tuple(DATASETS)


def get(name: str) -> Dataset:
  """The entry of ``name``; ValueError naming ``config.dataset`` and the known names otherwise."""
  if name not in DATASETS:
    raise ValueError(f"config.dataset={name!r} is not supported; known: {sorted(DATASETS)}")
  return DATASETS[name]
