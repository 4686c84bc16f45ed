"""Mock data for the tests that train: small *real* TFDS datasets, read through the real loader.

:func:`mock_data` points ``TFDS_DATA_DIR`` (``datasets.data_root``: used wherever a config's
``data_dir`` is empty) at a folder holding ``fashion_mnist``, ``cifar10`` and ``imagenet2012`` as
prepared ArrayRecord datasets of ``NUM_EXAMPLES`` random examples per split. Each is TFDS's own
catalog builder (name, version, features, splits) whose examples are generated here: Fashion-MNIST's
28x28 grey PNGs, CIFAR-10's 32x32 colour PNGs, ImageNet's colour JPEGs of varying size. Nothing is
patched: the data layer reads them exactly as it reads real data. They are written once per
process (about a second) and removed at exit.
"""

import atexit
import contextlib
import functools
import io
import logging
import os
import shutil
import tempfile

import numpy as np
import tensorflow_datasets as tfds

from alexnet_jax.data import images

NUM_EXAMPLES = 64  # a :smoke config (batch 16) sees 4 batches per epoch and 64 eval examples
SPLITS = {"fashion_mnist": ("train", "test"), "cifar10": ("train", "test"), "imagenet2012": ("train", "validation")}
IMAGENET_SIDES = (40, 90)  # ImageNet's mock images: each side in this range


def random_example(features, rng: np.random.Generator, index: int) -> dict:
  """One example of ``features`` (a TFDS FeaturesDict) with random pixels and labels; images as
  encoded bytes (no TensorFlow needed to store them)."""
  example = {}
  for name, feature in features.items():
    if isinstance(feature, tfds.features.Image):
      height, width, channels = feature.shape
      if height is None:
        height, width = (int(side) for side in rng.integers(*IMAGENET_SIDES, size=2))
      pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
      encoded = images.encode_jpeg(pixels, 90) if feature.encoding_format == "jpeg" else images.encode_png(pixels)
      example[name] = io.BytesIO(encoded)
    elif isinstance(feature, tfds.features.ClassLabel):
      example[name] = int(rng.integers(feature.num_classes))
    else:
      example[name] = f"mock_{index:06d}"
  return example


def write_mock_dataset(name: str, data_dir: str, num_examples: int = NUM_EXAMPLES) -> None:
  """``name`` as a prepared ArrayRecord dataset of random examples in ``data_dir``."""

  class MockBuilder(tfds.builder_cls(name), skip_registration=True):
    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: self._generate(split) for split in SPLITS[name]}

    def _generate(self, split):
      rng = np.random.default_rng(SPLITS[name].index(split))
      for index in range(num_examples):
        yield index, random_example(self.info.features, rng, index)

  MockBuilder.name = name
  # Quietly: commands run on the mock data (tests/support/mock_data_main.py) must print only their own words.
  quiet = io.StringIO()
  with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet), _absl_level(logging.ERROR):
    tfds.disable_progress_bar()
    MockBuilder(data_dir=data_dir, file_format="array_record").download_and_prepare()


@contextlib.contextmanager
def _absl_level(level):
  """TFDS's absl log lines at ``level`` and above only (the logger itself: absl's flags stay as they are)."""
  logger = logging.getLogger("absl")
  before = logger.level
  logger.setLevel(level)
  try:
    yield
  finally:
    logger.setLevel(before)


@functools.cache
def _mock_dir() -> str:
  directory = tempfile.mkdtemp(prefix="alexnet_jax_mock_tfds_")
  atexit.register(shutil.rmtree, directory, ignore_errors=True)
  for name in SPLITS:
    write_mock_dataset(name, directory)
  return directory


@contextlib.contextmanager
def mock_data():
  """The mock datasets as TFDS's default data directory while the context lasts."""
  before = os.environ.get("TFDS_DATA_DIR")
  os.environ["TFDS_DATA_DIR"] = _mock_dir()
  try:
    yield
  finally:
    if before is None:
      os.environ.pop("TFDS_DATA_DIR", None)
    else:
      os.environ["TFDS_DATA_DIR"] = before
