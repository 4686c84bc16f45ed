"""Where a prepared store lives and how the pipeline reads it (``prepare_store.py`` writes it).

A store holds every image of a dataset as its central ``size`` x ``size`` square (the paper's §2
step, done once), JPEG-encoded, in a TFDS dataset of ArrayRecord files named ``<dataset>_<size>`` beside the source
(``<data_dir>/imagenet2012_256/1.0.0``), plus ``pixel_stats.npz``: the training set's mean image,
per-channel mean and RGB colour PCA (eigenvalues are variances of [0, 1] pixels, eigenvectors are
columns), and ``store_info.json``: how it was made (``resize``: ``config.input.resize``'s method, JPEG
quality, source) and which source images it left out as unreadable. ``tfds.builder_from_directory``
reads it like any prepared TFDS dataset (``as_data_source``: no TensorFlow).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from alexnet_jax import utils
from alexnet_jax.data import options

VERSION = "1.0.0"
STATS_FILE = "pixel_stats.npz"
STATS_KEYS = ("mean_image", "channel_mean", "eigenvalues", "eigenvectors", "count")
INFO_FILE = "store_info.json"
# Stores made before INFO_FILE recorded the method all resized the shorter side.
UNRECORDED_RESIZE = options.SHORTER_SIDE


def name(dataset: str, size: int) -> str:
  return f"{dataset}_{size}"


def directory(data_dir_root: str, dataset: str, size: int) -> str:
  """The store's TFDS version directory under the source's data_dir root."""
  return os.path.join(os.fspath(data_dir_root), name(dataset, size), VERSION)


def is_prepared(path: str) -> bool:
  """Whether the store at ``path`` is complete: metadata and pixel statistics are written last."""
  return os.path.isfile(os.path.join(path, "dataset_info.json")) and os.path.isfile(os.path.join(path, STATS_FILE))


def load(path: str) -> tfds.core.DatasetBuilder:
  return tfds.builder_from_directory(path)


def read_stats(path: str) -> dict[str, np.ndarray]:
  """The store's pixel statistics (see the module docstring)."""
  with np.load(os.path.join(path, STATS_FILE)) as stats:
    return {key: stats[key] for key in STATS_KEYS}


def builder_stats(builder) -> dict[str, np.ndarray] | None:
  """The pixel statistics of a store's builder; None for any other dataset."""
  path = os.fspath(builder.data_dir)
  return read_stats(path) if os.path.isfile(os.path.join(path, STATS_FILE)) else None


def read_info(path: str) -> dict:
  """What ``INFO_FILE`` records about the store at ``path`` ({} for a store made before it existed)."""
  info_path = os.path.join(path, INFO_FILE)
  return utils.read_json_object(info_path) if os.path.isfile(info_path) else {}


def resize_method(path: str) -> str:
  """How the store's squares were made (``options.RESIZES``)."""
  return read_info(path).get("resize", UNRECORDED_RESIZE)


def builder_resize(builder) -> str | None:
  """The resize method of a store's builder; None for any other dataset."""
  path = os.fspath(builder.data_dir)
  return resize_method(path) if os.path.isfile(os.path.join(path, STATS_FILE)) else None
