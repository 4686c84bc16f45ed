"""Builds TFDS's ``fashion_mnist`` from Debian's ``dataset-fashion-mnist`` files, offline.

Debian ships the original four IDX files in ``/usr/share/datasets/fashion-mnist/`` but re-gzipped,
so their sha256 differs from the checksums TFDS registered and TFDS's own builder refuses them as a
manual download. :class:`DebianFashionMnist` is that official builder (same catalog name, version,
features, splits and metadata) with one change: its examples come from the local files instead of
the download manager. It writes ArrayRecord files, each image as PNG bytes encoded here with PIL
(handed a numpy array, TFDS would import TensorFlow to encode it): no TensorFlow at all.
After :func:`prepare_fashion_mnist`, a plain ``tfds.builder("fashion_mnist", data_dir=...)`` loads
the data like a downloaded copy. Nothing in site-packages is touched. The dataset's registry entry
(``registry.py``) calls :func:`debian_copy_installed`, :func:`convert_debian_copy` and :func:`how_to_get`.

  python -m alexnet_jax.data.fashion_mnist_offline --data_dir=~/tensorflow_datasets
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import time

import numpy as np
import tensorflow_datasets as tfds
from absl import app, flags, logging

from alexnet_jax import errors
from alexnet_jax.data import data_dirs
from alexnet_jax.data import images as image_codec

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
INSTALL_HINT = f"sudo apt-get install dataset-fashion-mnist  (puts the IDX files in {DEBIAN_DIR})"

# The files of each split, named as upstream (and Debian) name them.
SPLIT_FILES = {
  "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
  "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_MAGIC = {3: 2051, 1: 2049}  # number of dimensions -> magic number of unsigned-byte IDX files


def source_files(source_dir: str = DEBIAN_DIR) -> list[str]:
  return [os.path.join(source_dir, name) for pair in SPLIT_FILES.values() for name in pair]


def has_source_files(source_dir: str = DEBIAN_DIR) -> bool:
  return all(os.path.isfile(path) for path in source_files(source_dir))


def debian_copy_installed() -> bool:
  """Whether Debian's ``dataset-fashion-mnist`` files are installed (:data:`DEBIAN_DIR`)."""
  return has_source_files(DEBIAN_DIR)


def convert_debian_copy(data_dir: str):
  """Debian's files converted into ``data_dir``; the loaded builder."""
  return prepare_fashion_mnist(data_dir, DEBIAN_DIR)


def how_to_get(root: str, manual_dir: str | None) -> str:
  """What to do offline when TFDS cannot download it into ``root``."""
  del manual_dir  # not a manual download
  return (
    f"Offline, install Debian's copy and rerun (it is converted automatically):\n"
    f"  {INSTALL_HINT}\n"
    f"or convert the four IDX .gz files from another directory:\n"
    f"  python -m alexnet_jax.data.fashion_mnist_offline --source_dir=DIR --data_dir={root}"
  )


def read_idx(path: str, ndim: int) -> np.ndarray:
  """The uint8 array stored in the gzipped IDX file at ``path`` (labels: ndim=1, images: ndim=3)."""
  with gzip.open(path, "rb") as f:
    data = f.read()
  magic = int.from_bytes(data[:4], "big")
  if magic != _IDX_MAGIC[ndim]:
    raise ValueError(
      f"{path}: magic number {magic} is not an unsigned-byte IDX file with {ndim} dims (expected {_IDX_MAGIC[ndim]})"
    )
  shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
  array = np.frombuffer(data, np.uint8, offset=4 * (1 + ndim))
  if array.size != np.prod(shape):
    raise ValueError(f"{path}: header says shape {shape} but holds {array.size} values")
  return array.reshape(shape)


def read_split(source_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Images (N, 28, 28, 1) uint8 and labels (N,) of one split from the IDX files in ``source_dir``."""
  images_file, labels_file = SPLIT_FILES[split]
  images = read_idx(os.path.join(source_dir, images_file), ndim=3)
  labels = read_idx(os.path.join(source_dir, labels_file), ndim=1)
  if len(images) != len(labels):
    raise ValueError(f"{source_dir}: {split} has {len(images)} images but {len(labels)} labels")
  return images[..., None], labels.astype(np.int64)


class DebianFashionMnist(tfds.builder_cls("fashion_mnist"), skip_registration=True):
  """TFDS's official ``fashion_mnist`` builder, reading the IDX files from a local directory."""

  name = "fashion_mnist"  # the catalog name, so tfds.builder("fashion_mnist") finds the result

  def __init__(self, *, source_dir: str = DEBIAN_DIR, **kwargs):
    self._source_dir = source_dir
    super().__init__(**kwargs)

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {split: self._generate_examples(split) for split in SPLIT_FILES}

  def _generate_examples(self, split):
    images, labels = read_split(self._source_dir, split)
    for index, (image, label) in enumerate(zip(images, labels)):
      # Keys as the official builder's: the index. PNG bytes: lossless, and no TensorFlow to encode.
      yield index, {"image": io.BytesIO(image_codec.encode_png(image)), "label": label}


class SourceFilesMissing(errors.UserError, FileNotFoundError):
  """The IDX files to convert are not where they were looked for."""


def prepare_fashion_mnist(data_dir: str | None = None, source_dir: str = DEBIAN_DIR):
  """Writes ``fashion_mnist`` into ``data_dir`` (None: TFDS's default) and returns the loaded builder."""
  missing = [path for path in source_files(source_dir) if not os.path.isfile(path)]
  if missing:
    raise SourceFilesMissing(f"Fashion-MNIST IDX files missing: {', '.join(missing)}. Install them: {INSTALL_HINT}")
  builder = DebianFashionMnist(source_dir=source_dir, data_dir=data_dir, file_format="array_record")
  logging.info("Building TFDS fashion_mnist from %s into %s", source_dir, builder.data_dir)
  builder.download_and_prepare()
  return tfds.builder("fashion_mnist", data_dir=data_dir)


def main(argv):
  """Converts, with every failure the user can act on (no IDX files, an unwritable data folder) as one line."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  start = time.perf_counter()
  try:
    data_dir = data_dirs.resolve_data_dir(flags.FLAGS.data_dir)
    data_dirs.check_writable(data_dir, "--data_dir")
    builder = prepare_fashion_mnist(data_dir, flags.FLAGS.source_dir)
  except errors.UserError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
  splits = {name: split.num_examples for name, split in builder.info.splits.items()}
  print(
    f"fashion_mnist {builder.info.version} ready in {builder.data_dir}: {splits} ({time.perf_counter() - start:.1f} s)"
  )


if __name__ == "__main__":
  # Defined here, not at import, so importing this module adds no flags to alexnet_jax.main.
  flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).")
  flags.DEFINE_string("source_dir", DEBIAN_DIR, "Directory holding the four IDX .gz files.")
  app.run(main)
