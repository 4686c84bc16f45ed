"""Where prepared datasets live: the TFDS data directory, whether a dataset can be prepared in it, and
the errors when a dataset is not there or cannot be read.

The bottom of the preparation side: ``datasets.py`` and each dataset's converter (e.g.
``fashion_mnist_offline.py``) use it, and it imports neither.
"""

from __future__ import annotations

import os
import tempfile

from alexnet_jax import errors


class DatasetUnavailableError(errors.UserError, ValueError):
  """The dataset is neither prepared nor obtainable here; the message says how to get it."""


class DatasetCorruptError(DatasetUnavailableError):
  """The prepared files cannot be read (a truncated or damaged shard, a missing dataset_info.json)."""


def data_root(config) -> str:
  """The TFDS data directory: ``config.data_dir``, else ``$TFDS_DATA_DIR``, else ~/tensorflow_datasets."""
  return resolve_data_dir(config.data_dir)


def resolve_data_dir(data_dir: str | None) -> str:
  """``data_dir``, else ``$TFDS_DATA_DIR``, else ~/tensorflow_datasets (home expanded)."""
  return os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets"))


def check_writable(data_dir: str, flag: str = "--config.data_dir") -> None:
  """Makes ``data_dir`` if missing and checks that files can be created in it, before a dataset is
  prepared there; :class:`DatasetUnavailableError` naming the folder and what chooses another
  (``flag`` or ``TFDS_DATA_DIR``) otherwise -- e.g. under a read-only HOME."""
  try:
    os.makedirs(data_dir, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".write_test"):
      pass
  except OSError as error:
    raise DatasetUnavailableError(
      f"the data folder {data_dir} cannot be written ({error.strerror or error}), and the dataset must be "
      f"prepared there first: choose a writable folder with {flag}=DIR or TFDS_DATA_DIR=DIR"
    ) from error
