"""tf.data input pipeline: per-process tfds splits, the paper's augmentation, batches of numpy arrays.

Training (:func:`create_train_iterator`) is an endless stream of epochs. Each process reads its own
equal share of the train split (``tfds.even_splits``, remainder dropped), reshuffled every epoch
with a shuffle seeded by (seed, process, epoch), and cut into ``batch_size // process_count``
batches (the incomplete last batch of an epoch is dropped). The example at stream position ``p``
is augmented with stateless random ops keyed by (seed, process, p), so the stream is a pure
function of the seed: a run resumed at ``start_step`` jumps straight to that step's epoch and
skips the rest before anything is decoded, and sees exactly the batches an unbroken run would.

Evaluation (:func:`create_eval_iterator`) reads each process's share once, in order, and pads the
last batch with ``mask == 0`` examples so that every example counts exactly once and every process
runs the same number of batches.

The augmentation itself lives in :mod:`alexnet_jax.augment`; which datasets exist and how they get
prepared (offline Fashion-MNIST included) in :mod:`alexnet_jax.datasets`. TensorFlow stays in the
input pipeline: the model and the train step never import this module.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import jax
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from alexnet_jax import augment, datasets
from alexnet_jax.datasets import DatasetUnavailableError  # noqa: F401 -- main catches it from here


def _hide_accelerators_from_tensorflow() -> None:
  """TF only feeds the host: it must not grab the accelerator memory that JAX needs."""
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError as error:  # TF already initialised its devices (someone used it first)
    logging.warning("Could not hide GPUs from TensorFlow: %s", error)


_hide_accelerators_from_tensorflow()

Batch = dict[str, np.ndarray]
EVAL_CROPS = ("center", "ten_crop")
NORMALIZATIONS = ("standardize", "subtract_mean")
_DEFER_IMAGE_DECODING = {"image": tfds.decode.SkipDecoding()}  # decode after skipping, not before
_FOREVER = 2**62  # epochs in the training stream


def create_train_iterator(config, *, seed: int, start_step: int = 0, process_index: int | None = None,
                          process_count: int | None = None) -> Iterator[Batch]:
  """Endless training batches {"image": (B, S, S, 3) float32, "label": (B,) int32} for this process.

  ``B = config.batch_size // process_count`` and ``S = config.input.crop_size``. Starting at
  ``start_step`` yields what a run from step 0 yields from that step on.
  """
  process_index, process_count = _process(process_index, process_count)
  local_batch = validate_input_config(config, process_count)
  builder = datasets.prepared_builder(config)
  split = tfds.even_splits(config.train_split, process_count, drop_remainder=True)[process_index]
  steps_per_epoch = _num_examples(builder, split) // local_batch
  if steps_per_epoch == 0:
    raise ValueError(f"config.batch_size={config.batch_size} exceeds the {_num_examples(builder, split)} "
                     f"training examples of each of the {process_count} processes")
  ds = _train_stream(builder, split, config, seed=seed, process_index=process_index,
                     epoch_length=steps_per_epoch * local_batch, start=start_step * local_batch)
  return ds.batch(local_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def create_eval_iterator(config, *, process_index: int | None = None,
                         process_count: int | None = None) -> Iterator[Batch]:
  """One pass over this process's share of the eval split, padded: "image", "label" and "mask".

  "image" is (B, S, S, 3), or (B, 10, S, S, 3) with ``config.input.eval_crops == "ten_crop"``;
  "mask" is 1.0 for real examples and 0.0 for padding. At most ``config.eval_max_examples`` (if > 0)
  examples are read in all, split evenly over the processes.
  """
  process_index, process_count = _process(process_index, process_count)
  local_batch = validate_input_config(config, process_count)
  builder = datasets.prepared_builder(config)
  num_examples = _num_eval_examples(builder, config)
  num_batches = _ceil_div(_ceil_div(num_examples, process_count), local_batch)
  ds = builder.as_dataset(split=tfds.even_splits(config.eval_split, process_count)[process_index],
                          shuffle_files=False, decoders=_DEFER_IMAGE_DECODING,
                          read_config=tfds.ReadConfig(try_autocache=False))
  ds = ds.take(_even_share(num_examples, process_count, process_index))
  ds = ds.map(functools.partial(_eval_example, config=config, decode=_image_decoder(builder)),
              num_parallel_calls=tf.data.AUTOTUNE)
  padding = tf.data.Dataset.from_tensors(
      tf.nest.map_structure(lambda spec: tf.zeros(spec.shape, spec.dtype), ds.element_spec))
  ds = ds.concatenate(padding.repeat()).take(num_batches * local_batch)
  return ds.batch(local_batch).prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def dataset_info(config) -> tuple[int, int, int]:
  """(train examples, eval examples, classes) of the configured splits, over all processes.

  The eval count respects ``config.eval_max_examples``. Steps per epoch are
  ``num_train_examples // config.batch_size``, the same as each process's share gives.
  """
  builder = datasets.prepared_builder(config)
  num_classes = builder.info.features["label"].num_classes
  return _num_examples(builder, config.train_split), _num_eval_examples(builder, config), num_classes


def validate_input_config(config, process_count: int = 1) -> int:
  """Checks the data fields of ``config``; returns the per-process batch size."""
  datasets.pixel_stats(config.dataset)
  size = config.input
  if not 0 < size.crop_size <= size.resize_size:
    raise ValueError(f"config.input.crop_size={size.crop_size} must be in (0, config.input.resize_size="
                     f"{size.resize_size}]")
  if size.eval_crops not in EVAL_CROPS:
    raise ValueError(f"config.input.eval_crops={size.eval_crops!r}; allowed: {EVAL_CROPS}")
  if _normalization(config) not in NORMALIZATIONS:
    raise ValueError(f"config.input.normalization={_normalization(config)!r}; allowed: {NORMALIZATIONS}")
  if size.pca_noise_std < 0:
    raise ValueError(f"config.input.pca_noise_std={size.pca_noise_std} must be >= 0")
  if size.shuffle_buffer < 1:
    raise ValueError(f"config.input.shuffle_buffer={size.shuffle_buffer} must be >= 1")
  if config.batch_size < 1 or config.batch_size % process_count:
    raise ValueError(f"config.batch_size={config.batch_size} must be a positive multiple of the "
                     f"process count {process_count}")
  return config.batch_size // process_count


def _train_stream(builder, split, config, *, seed: int, process_index: int, epoch_length: int,
                  start: int) -> tf.data.Dataset:
  """This process's augmented training examples from stream position ``start`` on, forever.

  Epoch ``e`` is the split (files in a fixed seeded order) through a shuffle buffer seeded by
  (seed, process, e), cut to ``epoch_length``; positions count examples from the start of training.
  Everything before ``start`` is skipped as raw records: resuming decodes nothing twice.
  """
  stream_seed = tf.constant([seed % 2**32, process_index], tf.int64)
  records = builder.as_dataset(
      split=split, shuffle_files=True, decoders=_DEFER_IMAGE_DECODING,
      read_config=tfds.ReadConfig(shuffle_seed=seed, shuffle_reshuffle_each_iteration=False,
                                  try_autocache=False))

  def epoch(index):
    epoch_key = tf.random.experimental.stateless_fold_in(stream_seed, index)
    shuffle_seed = tf.random.stateless_uniform([], epoch_key, minval=None, maxval=None, dtype=tf.int64)
    return records.shuffle(config.input.shuffle_buffer, seed=shuffle_seed).take(epoch_length)

  first_epoch, skip = divmod(start, epoch_length)
  ds = tf.data.Dataset.range(first_epoch, _FOREVER).flat_map(epoch)
  ds = ds.enumerate(start=first_epoch * epoch_length).skip(skip)
  return ds.map(functools.partial(_train_example, config=config, decode=_image_decoder(builder),
                                  stream_seed=stream_seed),
                num_parallel_calls=tf.data.AUTOTUNE)


def _train_example(position, example, *, config, decode, stream_seed) -> dict[str, tf.Tensor]:
  seed = tf.random.experimental.stateless_fold_in(stream_seed, position)
  image = augment.train_image(
      decode(example["image"]), seed, resize_size=config.input.resize_size,
      crop_size=config.input.crop_size, random_position=config.input.random_crop,
      flip=config.input.random_flip, lighting_std=config.input.pca_noise_std)
  return {"image": _normalize(image, config), "label": tf.cast(example["label"], tf.int32)}


def _eval_example(example, *, config, decode) -> dict[str, tf.Tensor]:
  image = augment.eval_image(decode(example["image"]), resize_size=config.input.resize_size,
                             crop_size=config.input.crop_size,
                             ten_crop=config.input.eval_crops == "ten_crop")
  return {"image": _normalize(image, config), "label": tf.cast(example["label"], tf.int32),
          "mask": tf.constant(1.0, tf.float32)}


def _normalize(image: tf.Tensor, config) -> tf.Tensor:
  """``standardize``: (x - mean) / std. ``subtract_mean``: the paper's centred raw RGB, (x - mean) * 255."""
  mean, std = datasets.pixel_stats(config.dataset)
  if _normalization(config) == "subtract_mean":
    return augment.normalize(image, mean, None) * 255.0
  return augment.normalize(image, mean, std)


def _normalization(config) -> str:
  return config.input.get("normalization", "standardize")


def _image_decoder(builder):
  return builder.info.features["image"].decode_example


def _num_examples(builder, split) -> int:
  """Examples in ``split`` (any tfds split string or even split), from the reader's cardinality."""
  count = int(builder.as_dataset(split=split, decoders=_DEFER_IMAGE_DECODING).cardinality())
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
