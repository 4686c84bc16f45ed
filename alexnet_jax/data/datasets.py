"""The datasets the loader knows and how each one gets onto the disk, as ArrayRecord files.

:func:`prepared_builder` returns a TFDS builder whose data is ready to read with
``builder.as_data_source`` (random access, no TensorFlow), in this order: the dataset's prepared
store of central squares (``store.py``, with ``config.input.use_store``); already prepared as
ArrayRecord in the data directory -> read it (no network); ``fashion_mnist`` with Debian's files
installed -> convert them offline (``fashion_mnist_offline.py``; a copy prepared in the old TFRecord
form is moved aside and converted again, a few seconds); otherwise TFDS's usual
``download_and_prepare`` in ArrayRecord form (online download, or ImageNet's manual tars). When that
fails, a :class:`DatasetUnavailableError` says exactly what to install or where to put which files.
"""

from __future__ import annotations

import os
import tempfile
import threading

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from array_record.python import array_record_module
from google.protobuf import message
from tensorflow_datasets.core import file_adapters
from tensorflow_datasets.proto import tf_example_pb2

from alexnet_jax import errors
from alexnet_jax.data import fashion_mnist_offline, store


class DatasetUnavailableError(errors.UserError, ValueError):
  """The dataset is neither prepared nor obtainable here; the message says how to get it."""


class DatasetCorruptError(DatasetUnavailableError):
  """The prepared files cannot be read (a truncated or damaged shard, a missing dataset_info.json)."""


ARRAY_RECORD = file_adapters.FileFormat.ARRAY_RECORD
RANDOM_ACCESS = "readahead_buffer_size:0,max_parallelism:0"  # array_record's advice for random reads
READ_BUFFER_BYTES = 32_768  # array_record's data source's: one stored 256-px JPEG square (~20 KB) in one read


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


def prepared_builder(config) -> tfds.core.DatasetBuilder:
  """The TFDS builder of ``config.dataset`` in its data directory, prepared as ArrayRecord if it was not."""
  data_dir = data_root(config)
  if os.path.exists(data_dir) and not os.path.isdir(data_dir):
    raise DatasetUnavailableError(
      f"config.data_dir={data_dir} is a file, not a directory: point it at the TFDS data directory "
      "(the one holding a fashion_mnist/ or imagenet2012/ folder), or at a new directory to prepare the data in."
    )
  store_dir = store.directory(data_dir, config.dataset, config.input.resize_size)
  if config.input.use_store and store.is_prepared(store_dir):
    logging.info("Reading the prepared store %s", store_dir)
    builder = store.load(store_dir)
    return builder if builder.info.file_format == ARRAY_RECORD else _old_format(config, builder)
  builder = tfds.builder(config.dataset, data_dir=data_dir)  # a prepared copy keeps its own file format
  if builder.is_prepared():
    if builder.info.file_format == ARRAY_RECORD:
      return builder
    return _old_format(config, builder)
  if os.path.isdir(builder.data_dir):  # TFDS renames a finished preparation here: its dataset_info.json is gone
    raise corrupt(config.dataset, builder.data_dir, FileNotFoundError(f"no dataset_info.json in {builder.data_dir}"))
  if config.dataset == "imagenet2012" and config.input.use_store:
    raise DatasetUnavailableError(store_missing(config, data_dir, store_dir))
  check_writable(data_dir)
  if config.dataset == "fashion_mnist" and fashion_mnist_offline.has_source_files(fashion_mnist_offline.DEBIAN_DIR):
    return fashion_mnist_offline.prepare_fashion_mnist(data_dir, fashion_mnist_offline.DEBIAN_DIR)
  logging.info(
    "%s is not prepared in %s; asking TFDS to download and prepare it (offline, this "
    "fails after a few minutes of retries)",
    config.dataset,
    data_dir,
  )
  builder = tfds.builder(config.dataset, data_dir=data_dir, file_format=ARRAY_RECORD)
  manual_dir = config.manual_dir or None
  try:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  except Exception as error:  # noqa: BLE001 -- any failure here means: the data is not obtainable
    raise DatasetUnavailableError(how_to_get(config.dataset, builder, manual_dir, error)) from error
  return builder


def _old_format(config, builder) -> tfds.core.DatasetBuilder:
  """A dataset prepared in another file format (TFRecord, which needs TensorFlow to read): Debian's
  Fashion-MNIST is moved aside and converted again; anything else is a :class:`DatasetUnavailableError`
  with the commands that prepare it again."""
  version_dir = os.fspath(builder.data_dir)
  aside = os.path.join(
    data_root(config), f"{config.dataset}-{os.path.basename(version_dir)}.{builder.info.file_format.value}"
  )
  if builder.name == "fashion_mnist" and fashion_mnist_offline.has_source_files(fashion_mnist_offline.DEBIAN_DIR):
    logging.warning(
      "%s holds the old %s form; moving it to %s and converting Debian's files again",
      version_dir,
      builder.info.file_format.value,
      aside,
    )
    os.replace(version_dir, aside)
    return fashion_mnist_offline.prepare_fashion_mnist(data_root(config), fashion_mnist_offline.DEBIAN_DIR)
  command = (
    "python -m alexnet_jax.data.prepare_store --config=experiments/imagenet2012.py ..."
    if builder.name != config.dataset or config.dataset == "imagenet2012"
    else "the same command"
  )
  raise DatasetUnavailableError(
    f"{config.dataset} in {version_dir} was prepared as {builder.info.file_format.value}, which only TensorFlow "
    f"reads; this version reads ArrayRecord. Prepare it again: mv {version_dir} {aside} and rerun ({command})."
  )


class ImageLabelRecords:
  """Random access to a prepared split's {"image": encoded bytes, "label": int} and nothing else.

  Opens the split's ArrayRecord files itself (the files and record ranges TFDS's data source would
  read, ``SplitInfo.file_instructions``), one reader per file shared by every thread, and reads a
  batch one record at a time: TFDS's and array_record's data sources start a thread pool for every
  batch and their batched read costs ~2x the CPU per record of single reads. Then parses only the
  two features from each ``tf.train.Example`` proto (C++ protobuf) where TFDS's own deserialisation
  of every feature (ImageNet's file name included) costs ~90 CPU-us more."""

  def __init__(self, dataset_dir: str, split: str):
    files = tfds.builder_from_directory(dataset_dir).info.splits[split].file_instructions
    self._paths = [os.fspath(file.filename) for file in files]
    self._ends = np.cumsum([file.take for file in files])  # one past each file's last example of the split
    self._offsets = np.asarray([file.skip for file in files]) - (self._ends - [file.take for file in files])
    self._readers: list = [None] * len(files)
    self._lock = threading.Lock()

  def __len__(self) -> int:
    return int(self._ends[-1]) if len(self._ends) else 0

  def __getitem__(self, index: int) -> dict | None:
    return self.__getitems__([index])[0]

  def __getitems__(self, indices) -> list[dict | None]:
    """The records at ``indices``; None for one that cannot be read (a damaged or truncated file)."""
    indices = np.asarray(indices, np.int64)
    if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
      raise IndexError(f"record indices must be in [0, {len(self)})")
    files = np.searchsorted(self._ends, indices, side="right")
    positions = indices + self._offsets[files]
    return [
      _image_and_label(self._reader(file).read([position])[0])
      for file, position in zip(files.tolist(), positions.tolist())
    ]

  def _reader(self, file: int):
    """The reader of file ``file``, opened on first use (random-access options: no read-ahead, no pool)."""
    reader = self._readers[file]
    if reader is None:
      with self._lock:
        if self._readers[file] is None:
          self._readers[file] = array_record_module.ArrayRecordReader(
            self._paths[file], options=RANDOM_ACCESS, file_reader_buffer_size=READ_BUFFER_BYTES
          )
        reader = self._readers[file]
    return reader


def _image_and_label(record: bytes | None) -> dict | None:
  """The image bytes and label of one serialized example; None if the record is empty or damaged."""
  try:
    features = tf_example_pb2.Example.FromString(record or b"").features.feature
    return {"image": features["image"].bytes_list.value[0], "label": features["label"].int64_list.value[0]}
  except (IndexError, message.DecodeError):  # a truncated file reads as empty records
    return None


def corrupt(dataset: str, version_dir, error: Exception) -> DatasetCorruptError:
  """The error for prepared files that fail to read, with the commands that prepare them again."""
  data_dir = os.fspath(version_dir)  # ROOT/NAME/VERSION; moved out of ROOT/NAME, where TFDS looks
  damaged = os.path.join(os.path.dirname(os.path.dirname(data_dir)), f"{dataset}-{os.path.basename(data_dir)}.damaged")
  source = {
    "fashion_mnist": "it is converted again from Debian's files, or downloaded",
    "imagenet2012": "it is converted again from the tars in the manual directory, which takes hours",
  }.get(dataset, "TFDS downloads and prepares it again")
  text = str(error).strip()
  first_line = text.splitlines()[0] if text else ""
  return DatasetCorruptError(
    f"reading {dataset} from {data_dir} failed ({type(error).__name__}: {first_line[:300]}): its prepared "
    f"files are damaged or incomplete. Prepare it again: move the damaged copy away with\n"
    f"  mv {data_dir} {damaged}\nand rerun the same command ({source})."
  )


def store_missing(config, data_dir: str, store_dir: str) -> str:
  """What to do when a run reads ImageNet from its store (``config.input.use_store``) and there is none:
  ``prepare_store`` writes it from the tars (TFDS's own conversion would need TensorFlow, and hours
  more, before the store could even start)."""
  manual_dir = os.path.expanduser(config.manual_dir or os.path.join(data_dir, "downloads", "manual"))
  return (
    f"imagenet2012 has no prepared store in {store_dir}. Register at https://image-net.org/download-images,"
    f" put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (as downloaded, not extracted) into {manual_dir}"
    f" (or point --config.manual_dir at the directory holding them), then write the store once with\n"
    f"  python -m alexnet_jax.data.prepare_store --config=experiments/imagenet2012.py --config.data_dir={data_dir}"
    f" --config.input.resize_size={config.input.resize_size} --config.input.resize={config.input.resize}\n"
    "and rerun (docs/imagenet.md: about 1.7 core-hours per million images)."
  )


def how_to_get(dataset: str, builder, manual_dir: str | None, error: Exception) -> str:
  """What the user must do so that ``dataset`` can be prepared in ``builder``'s data_dir."""
  root = os.fspath(builder.data_dir_root)
  failure = f"{dataset} is not prepared in {root} and TFDS could not prepare it ({type(error).__name__}: {error})."
  if isinstance(error, ImportError) and "tensorflow" in str(error):
    failure += (
      " TFDS's own builder needs TensorFlow to prepare it from its download (training does not):"
      " pip install -r requirements-prepare.txt, then rerun."
    )
  if dataset == "fashion_mnist":
    return (
      f"{failure}\nOffline, install Debian's copy and rerun (it is converted automatically):\n"
      f"  {fashion_mnist_offline.INSTALL_HINT}\n"
      f"or convert the four IDX .gz files from another directory:\n"
      f"  python -m alexnet_jax.data.fashion_mnist_offline --source_dir=DIR --data_dir={root}"
    )
  if dataset == "imagenet2012":
    manual_dir = manual_dir or os.path.join(root, "downloads", "manual")
    return (
      f"{failure}\nImageNet must be downloaded by hand: register at"
      f" https://image-net.org/download-images, then put ILSVRC2012_img_train.tar and"
      f" ILSVRC2012_img_val.tar (as downloaded, not extracted)"
      f" into {manual_dir} (or point --config.manual_dir at the directory holding them) and rerun;"
      f" the first run converts them into {root}."
    )
  if dataset == "cifar10":
    return (
      f"{failure}\nCIFAR-10 needs one online run (TFDS downloads it from www.cs.toronto.edu), or"
      f" --config.data_dir pointing at a directory where it is already prepared (e.g. a copy of"
      f" ~/tensorflow_datasets/cifar10 from an online machine)."
    )
  return f"{failure}\nRun once online, or set --config.data_dir to a directory where it is prepared."
