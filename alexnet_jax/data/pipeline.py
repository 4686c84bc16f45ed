"""tf.data input pipeline: per-process tfds splits, the paper's augmentation, batches of numpy arrays.

Training (:func:`create_train_iterator`) is one endless stream. Each process reads its own equal
share of the train split (``tfds.even_splits``, remainder dropped); epoch ``e`` is that share
through a shuffle buffer seeded by (seed, process, e); epochs follow each other without a gap and
the stream is cut into batches of ``batch_size // process_count``. The crops, flips and colour noise
of the batch at step ``k`` are drawn from the key (seed, process, k). The stream is therefore a pure
function of the seed: a run resumed at ``start_step`` computes that step's epoch and offset, skips
the rest of the epoch before anything is augmented (or, for streamed datasets, decoded), and sees
exactly the batches an unbroken run would.

Evaluation (:func:`create_eval_iterator`) reads each process's share once, in order, and pads the
last batch with ``mask == 0`` examples so that every example counts exactly once and every process
runs the same number of batches.

Where the work happens (it shares 2 cores with the train step here): images of a fixed size
(Fashion-MNIST, CIFAR-10) are decoded per example and resized, cropped and flipped per batch;
small such datasets are decoded once and kept in memory (:data:`IN_MEMORY_LIMIT_BYTES`). Images of
varying size (ImageNet) are decoded and resized per example, after shuffling and skipping.

The augmentation itself lives in ``data/augment.py``; which datasets exist and how they get
prepared (offline Fashion-MNIST included) in ``data/datasets.py``. TensorFlow stays in the
input pipeline: the model and the train step never import this module.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import jax
import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from alexnet_jax.config.validation import ConfigError
from alexnet_jax.data import augment, datasets, options, tf_host

tf = tf_host.tensorflow()

Batch = dict[str, np.ndarray]
IN_MEMORY_LIMIT_BYTES = 2**30  # decoded train splits up to this size are kept in memory
_FOREVER = 2**62  # epochs in the training stream


def create_train_iterator(
  config, *, seed: int, start_step: int = 0, process_index: int | None = None, process_count: int | None = None
) -> Iterator[Batch]:
  """Endless training batches {"image": (B, S, S, 3) float32, "label": (B,) int32} for this process.

  ``B = config.batch_size // process_count`` and ``S = config.input.crop_size``. Starting at
  ``start_step`` yields what a run from step 0 yields from that step on.
  """
  process_index, process_count = _process(process_index, process_count)
  local_batch = local_batch_size(config, process_count)
  builder = datasets.prepared_builder(config)
  split = tfds.even_splits(config.train_split, process_count, drop_remainder=True)[process_index]
  num_examples = _num_examples(builder, split)
  _check_batch_fits(config, num_examples, process_count)
  stream_seed = tf.constant([seed % 2**32, process_index], tf.int64)
  ds = _example_stream(
    builder, split, config, num_examples=num_examples, stream_seed=stream_seed, start=start_step * local_batch
  )
  ds = ds.batch(local_batch, drop_remainder=True).enumerate(start=start_step)
  ds = ds.map(
    functools.partial(_train_batch, config=config, stream_seed=stream_seed), num_parallel_calls=tf.data.AUTOTUNE
  )
  return _reading(ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator(), builder, config)


def create_eval_iterator(
  config, *, process_index: int | None = None, process_count: int | None = None
) -> Iterator[Batch]:
  """One pass over this process's share of the eval split, padded: "image", "label" and "mask".

  "image" is (B, S, S, 3), or (B, 10, S, S, 3) with ``config.input.eval_crops == "ten_crop"``;
  "mask" is 1.0 for real examples and 0.0 for padding. At most ``config.eval_max_examples`` (if > 0)
  examples are read in all, split evenly over the processes.
  """
  process_index, process_count = _process(process_index, process_count)
  local_batch = local_batch_size(config, process_count)
  builder = datasets.prepared_builder(config)
  num_examples = _num_eval_examples(builder, config)
  num_batches = _ceil_div(_ceil_div(num_examples, process_count), local_batch)
  split = tfds.even_splits(config.eval_split, process_count)[process_index]
  share = _even_share(num_examples, process_count, process_index)
  ds = _read(builder, split, shuffle_files=False).take(share)
  ds = ds.map(_per_example_preparation(builder, config), num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.map(lambda example: dict(example, mask=tf.constant(1.0)))
  padding = tf.data.Dataset.from_tensors(
    tf.nest.map_structure(lambda spec: tf.zeros(spec.shape, spec.dtype), ds.element_spec)
  )
  ds = ds.concatenate(padding.repeat()).take(num_batches * local_batch).batch(local_batch)
  ds = ds.map(functools.partial(_eval_batch, config=config), num_parallel_calls=tf.data.AUTOTUNE)
  return _reading(ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator(), builder, config)


def dataset_info(config) -> tuple[int, int, int]:
  """(train examples, eval examples, classes) of the configured splits, over all processes.

  The eval count respects ``config.eval_max_examples``. An epoch is
  ``num_train_examples // config.batch_size`` steps. Splits that do not exist or hold no examples,
  and a batch larger than each process's share of the train split, raise :class:`ConfigError`:
  the loop calls this before it writes anything to the workdir.
  """
  builder = datasets.prepared_builder(config)
  num_classes = builder.info.features["label"].num_classes
  num_train = _split_size(builder, config, "train_split")
  num_eval = _split_size(builder, config, "eval_split")
  num_eval = min(num_eval, config.eval_max_examples) if config.eval_max_examples > 0 else num_eval
  _check_batch_fits(config, num_train // jax.process_count(), jax.process_count())
  return num_train, num_eval, num_classes


def _split_size(builder, config, field: str) -> int:
  """Examples in ``config.<field>``; a split that does not exist or is empty is a :class:`ConfigError`."""
  split = config[field]
  try:
    count = _num_examples(builder, split)
  except (ValueError, KeyError) as error:  # tfds: "Unknown split", "Instruction [] corresponds to no data!"
    raise ConfigError(
      f"config.{field}={split!r} cannot be read from {builder.name} ({str(error).strip()}); its splits are "
      f"{sorted(builder.info.splits)} (slices like 'train[:90%]' work too)"
    ) from error
  if count == 0:
    raise ConfigError(f"config.{field}={split!r} of {builder.name} holds no examples")
  return count


def _check_batch_fits(config, examples_per_process: int, process_count: int) -> None:
  if examples_per_process < local_batch_size(config, process_count):
    raise ConfigError(
      f"config.batch_size={config.batch_size} exceeds the {examples_per_process} training "
      f"examples of each of the {process_count} processes (config.train_split={config.train_split!r})"
    )


# What tf.data raises on damaged TFRecord shards: a bad checksum, fewer records than recorded, a lost file.
_READ_ERRORS = (tf.errors.DataLossError, tf.errors.FailedPreconditionError, tf.errors.NotFoundError)


def _reading(batches: Iterator[Batch], builder, config) -> Iterator[Batch]:
  """``batches``, with a read failure of the prepared files turned into one message that says how to
  prepare them again (:func:`datasets.corrupt`)."""
  try:
    yield from batches
  except _READ_ERRORS as error:
    raise datasets.corrupt(config, builder, error) from error


def local_batch_size(config, process_count: int = 1) -> int:
  """Each process's share of ``config.batch_size`` (the config itself is validated up front)."""
  if config.batch_size % process_count:
    raise ValueError(
      f"config.batch_size={config.batch_size} must be a positive multiple of the process count {process_count}"
    )
  return config.batch_size // process_count


def _example_stream(
  builder, split, config, *, num_examples: int, stream_seed: tf.Tensor, start: int
) -> tf.data.Dataset:
  """Decoded training examples from stream position ``start`` on, forever.

  Epoch ``e`` is the split through a shuffle buffer seeded by (``stream_seed``, e). Small splits of
  fixed-size images are decoded during the first epoch and kept in memory; others are decoded after
  the skip to ``start``, so resuming decodes nothing it does not use.
  """
  prepare = _per_example_preparation(builder, config)
  records = _read(builder, split, shuffle_files=True, seed=int(stream_seed[0]))
  in_memory = _decoded_bytes(builder, num_examples) <= IN_MEMORY_LIMIT_BYTES
  if in_memory:
    logging.info(
      "Keeping the %d decoded training images in memory (%.0f MB)",
      num_examples,
      _decoded_bytes(builder, num_examples) / 2**20,
    )
    records = records.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).cache()

  def epoch(index):
    epoch_key = tf.random.experimental.stateless_fold_in(stream_seed, index)
    shuffle_seed = tf.random.stateless_uniform([], epoch_key, minval=None, maxval=None, dtype=tf.int64)
    return records.shuffle(config.input.shuffle_buffer, seed=shuffle_seed)

  first_epoch, skip = divmod(start, num_examples)
  ds = tf.data.Dataset.range(first_epoch, _FOREVER).flat_map(epoch).skip(skip)
  return ds if in_memory else ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)


def _read(builder, split, *, shuffle_files: bool, seed: int = 0) -> tf.data.Dataset:
  """{"image": encoded bytes, "label": int32} of ``split``; files in a fixed order given ``seed``."""
  read_config = tfds.ReadConfig(shuffle_seed=seed, shuffle_reshuffle_each_iteration=False, try_autocache=False)
  ds = builder.as_dataset(
    split=split, shuffle_files=shuffle_files, read_config=read_config, decoders={"image": tfds.decode.SkipDecoding()}
  )
  return ds.map(lambda example: {"image": example["image"], "label": tf.cast(example["label"], tf.int32)})


def _per_example_preparation(builder, config):
  """Decodes one example's image; images of varying size also become central squares here."""
  feature, fixed_size = builder.info.features["image"], _fixed_size(builder)

  def prepare(example):
    image = feature.decode_example(example["image"])
    if not fixed_size:
      image = augment.central_square(image, config.input.resize_size)
    return dict(example, image=image)

  return prepare


def _train_batch(step, batch, *, config, stream_seed) -> Batch:
  """The batch at ``step``, augmented with draws from the key (``stream_seed``, step)."""
  seed = tf.random.experimental.stateless_fold_in(stream_seed, step)
  views = augment.train_views(
    _batch_squares(batch["image"], config),
    seed,
    crop_size=config.input.crop_size,
    random_position=config.input.random_crop,
    flip=config.input.random_flip,
    lighting_std=config.input.pca_noise_std,
    **_mean_std(config),
  )
  return {"image": views, "label": batch["label"]}


def _eval_batch(batch, *, config) -> Batch:
  views = augment.eval_views(
    _batch_squares(batch["image"], config),
    crop_size=config.input.crop_size,
    ten_crop=config.input.eval_crops == "ten_crop",
    **_mean_std(config),
  )
  return {"image": views, "label": batch["label"], "mask": batch["mask"]}


def _batch_squares(images: tf.Tensor, config) -> tf.Tensor:
  """Central squares of a batch: uint8 images of a fixed size are resized here, in one op."""
  if images.dtype == tf.uint8:
    return augment.central_square(images, config.input.resize_size)
  return images  # already squares, made per example


def _fixed_size(builder) -> bool:
  return builder.info.features["image"].shape.count(None) == 0


def _decoded_bytes(builder, num_examples: int) -> float:
  """Memory the decoded images would take (inf for images of varying size)."""
  if not _fixed_size(builder):
    return math.inf
  return num_examples * math.prod(builder.info.features["image"].shape)


def _mean_std(config) -> dict[str, tuple[float, ...]]:
  """``standardize``: the dataset's mean and std. ``subtract_mean``: the paper's centred raw pixels,
  (x - mean) * 255, i.e. std = 1/255."""
  mean, std = options.pixel_stats(config.dataset)
  if config.input.normalization == "subtract_mean":
    std = (1 / 255,) * len(mean)
  return {"mean": mean, "std": std}


def _num_examples(builder, split) -> int:
  """Examples in ``split`` (any tfds split string or even split), from the reader's cardinality."""
  count = int(_read(builder, split, shuffle_files=False).cardinality())
  if count < 0:
    raise ValueError(f"cannot count the examples of split {split!r} of {builder.name}")
  return count


def _num_eval_examples(builder, config) -> int:
  count = _num_examples(builder, config.eval_split)
  return min(count, config.eval_max_examples) if config.eval_max_examples > 0 else count


def _even_share(total: int, parts: int, index: int) -> int:
  """Process ``index``'s share of ``total`` examples split as tfds.even_splits does (first ones +1)."""
  return total // parts + (index < total % parts)


def _ceil_div(a: int, b: int) -> int:
  return -(-a // b)


def _process(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  process_count = jax.process_count() if process_count is None else process_count
  process_index = jax.process_index() if process_index is None else process_index
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index} must be in [0, process_count={process_count})")
  return process_index, process_count
