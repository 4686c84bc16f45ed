"""Getting a dataset onto the disk as ArrayRecord files (:func:`prepare`), and reading them (:func:`prepared`,
:class:`ImageLabelRecords`).

:func:`prepare` is the explicit step every command takes before ``input_spec.build``, which only reads.
It follows the dataset's registry entry (``registry.py``). A dataset made from the user's own files
(``image_folder``) is its store: the entry's ``own_store`` writes it or checks it. Others, in this
order: the dataset's prepared store
of central squares (``store.py``, with ``config.input.use_store``); already prepared as ArrayRecord
in the data directory -> nothing to do (no network); a local copy the entry names (Debian's
Fashion-MNIST files) -> converted offline (a copy prepared in the old TFRecord form is moved aside and
converted again, a few seconds); otherwise TFDS's usual ``download_and_prepare`` in ArrayRecord form
(online download, or ImageNet's manual tars). When that fails, a :class:`DatasetUnavailableError`
says exactly what to install or where to put which files (the entry's words).
"""

from __future__ import annotations

import os
import threading

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from array_record.python import array_record_module
from google.protobuf import message
from tensorflow_datasets.core import file_adapters
from tensorflow_datasets.proto import tf_example_pb2

from alexnet_jax.data import registry, store
from alexnet_jax.data.data_dirs import DatasetCorruptError, DatasetUnavailableError, check_writable, data_root

ARRAY_RECORD = file_adapters.FileFormat.ARRAY_RECORD
PREPARE_STORE_COMMAND = "python -m alexnet_jax.data.prepare_store --config=experiments/imagenet2012.py ..."
RANDOM_ACCESS = "readahead_buffer_size:0,max_parallelism:0"  # array_record's advice for random reads
READ_BUFFER_BYTES = 32_768  # array_record's data source's: one stored 256-px JPEG square (~20 KB) in one read


def prepare(config) -> tfds.core.DatasetBuilder:
  """Makes ``config.dataset`` readable as ArrayRecord in its data directory (see the module docstring)
  and returns its builder: a store's, or the dataset's own."""
  entry = registry.get(config.dataset)
  if entry.own_store is not None:  # the user's files: the store is all there is of the dataset
    return store.load(entry.own_store.prepare(config))
  builder = _find(config)
  if builder is None:
    return _obtain(config, entry)
  if builder.info.file_format != ARRAY_RECORD:
    return _old_format(config, entry, builder)
  return builder


def prepared(config) -> tfds.core.DatasetBuilder:
  """The builder :func:`prepare` made readable, without changing anything on the disk;
  :class:`DatasetUnavailableError` when it is not prepared as ArrayRecord."""
  builder = _find(config)
  if builder is None or builder.info.file_format != ARRAY_RECORD:
    raise DatasetUnavailableError(
      f"{config.dataset} is not prepared as ArrayRecord in {data_root(config)}: prepare it first "
      "(datasets.prepare, which every command runs before reading it)"
    )
  if builder.name != config.dataset:  # a store: <dataset>_<size>
    logging.info("Reading the prepared store %s", builder.data_dir)
  return builder


def _find(config) -> tfds.core.DatasetBuilder | None:
  """The prepared store (with ``config.input.use_store``) or TFDS copy of ``config.dataset``, in any file
  format; None if neither is there. A data_dir that is a file, or a copy TFDS left half-renamed, is an error."""
  data_dir = data_root(config)
  if os.path.exists(data_dir) and not os.path.isdir(data_dir):
    raise DatasetUnavailableError(
      f"config.data_dir={data_dir} is a file, not a directory: point it at the TFDS data directory "
      "(the one holding a fashion_mnist/ or imagenet2012/ folder), or at a new directory to prepare the data in."
    )
  store_dir = store.directory(data_dir, config.dataset, config.input.resize_size)
  if config.input.use_store and store.is_prepared(store_dir):
    return store.load(store_dir)
  if registry.get(config.dataset).own_store is not None:  # no TFDS dataset of that name
    return None
  builder = tfds.builder(config.dataset, data_dir=data_dir)  # a prepared copy keeps its own file format
  if builder.is_prepared():
    return builder
  if os.path.isdir(builder.data_dir):  # TFDS renames a finished preparation here: its dataset_info.json is gone
    raise corrupt(config.dataset, builder.data_dir, FileNotFoundError(f"no dataset_info.json in {builder.data_dir}"))
  return None


def _obtain(config, entry: registry.Dataset) -> tfds.core.DatasetBuilder:
  """Prepares a dataset that is not on the disk: from its local copy, else by TFDS (download or manual files)."""
  data_dir = data_root(config)
  if config.input.use_store and entry.store_missing is not None:
    store_dir = store.directory(data_dir, config.dataset, config.input.resize_size)
    raise DatasetUnavailableError(entry.store_missing(config, data_dir, store_dir))
  check_writable(data_dir)
  if entry.local_copy is not None and entry.local_copy.installed():
    return entry.local_copy.convert(data_dir)
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
    raise DatasetUnavailableError(how_to_get(entry, builder, manual_dir, error)) from error
  return builder


def _old_format(config, entry: registry.Dataset, builder) -> tfds.core.DatasetBuilder:
  """A dataset prepared in another file format (TFRecord, which needs TensorFlow to read): one with a
  local copy (Debian's Fashion-MNIST) is moved aside and converted again; anything else is a
  :class:`DatasetUnavailableError` with the commands that prepare it again."""
  version_dir = os.fspath(builder.data_dir)
  aside = os.path.join(
    data_root(config), f"{config.dataset}-{os.path.basename(version_dir)}.{builder.info.file_format.value}"
  )
  is_store = builder.name != entry.name
  if not is_store and entry.local_copy is not None and entry.local_copy.installed():
    logging.warning(
      "%s holds the old %s form; moving it to %s and converting the local copy again",
      version_dir,
      builder.info.file_format.value,
      aside,
    )
    os.replace(version_dir, aside)
    return entry.local_copy.convert(data_root(config))
  command = PREPARE_STORE_COMMAND if is_store or entry.store_missing is not None else "the same command"
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
  source = registry.get(dataset).reprepare
  text = str(error).strip()
  first_line = text.splitlines()[0] if text else ""
  return DatasetCorruptError(
    f"reading {dataset} from {data_dir} failed ({type(error).__name__}: {first_line[:300]}): its prepared "
    f"files are damaged or incomplete. Prepare it again: move the damaged copy away with\n"
    f"  mv {data_dir} {damaged}\nand rerun the same command ({source})."
  )


def how_to_get(entry: registry.Dataset, builder, manual_dir: str | None, error: Exception) -> str:
  """What the user must do so that ``entry``'s dataset can be prepared in ``builder``'s data_dir."""
  root = os.fspath(builder.data_dir_root)
  failure = f"{entry.name} is not prepared in {root} and TFDS could not prepare it ({type(error).__name__}: {error})."
  if isinstance(error, ImportError) and "tensorflow" in str(error):
    failure += (
      " TFDS's own builder needs TensorFlow to prepare it from its download (training does not):"
      " pip install -r requirements-prepare.txt, then rerun."
    )
  return f"{failure}\n{entry.how_to_get(root, manual_dir)}"
