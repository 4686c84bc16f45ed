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

Where the work happens (``config.input.augment_on``). ``"device"`` (the ImageNet config): the host
does only uint8 work -- decode, the random crop, the flip -- and sends each image's crop offset,
flip and colour-noise coefficients with the uint8 batch; the train step adds the colour noise and
subtracts the mean (:func:`device_preprocessing`, ``data/device_augment.py``), 4x fewer bytes to
move and no float work on the host. All draws still come from the key (seed, process, step), so the
views are those of ``"host"`` (everything in tf.data, float32 batches; the small-data configs,
whose measured results came from it). Images of a fixed size
(Fashion-MNIST, CIFAR-10) are decoded per example and resized, cropped and flipped per batch;
small such datasets are decoded once and kept in memory (:data:`IN_MEMORY_LIMIT_BYTES`). Images of
varying size (ImageNet) are decoded and resized per example, after shuffling and skipping; a
prepared store's squares (``store.py``, read instead when there is one) only decoded, and with
``"device"`` only inside each example's patch.

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
from alexnet_jax.data import augment, datasets, device_augment, options, store, tf_host

tf = tf_host.tensorflow()

Batch = dict[str, np.ndarray]
IN_MEMORY_LIMIT_BYTES = 2**30  # decoded train splits up to this size are kept in memory
_FOREVER = 2**62  # epochs in the training stream


def create_train_iterator(
  config, *, seed: int, start_step: int = 0, process_index: int | None = None, process_count: int | None = None
) -> Iterator[Batch]:
  """Endless training batches {"image": (B, S, S, 3) float32, "label": (B,) int32} for this process.

  ``B = config.batch_size // process_count`` and ``S = config.input.crop_size``. With
  ``config.input.augment_on == "device"``, "image" is uint8 -- the (B, S, S, C) views, or for
  fixed-size images their (B, R, R, C) central squares, R = ``config.input.resize_size``, which the
  step cuts -- and the batch also holds "crop_offset", "flip" and "pca_alpha"
  (``augment.train_crop_draws``, ``train_alphas``) for :func:`device_preprocessing`. Starting at
  ``start_step`` yields what a run from step 0 yields from that step on.
  """
  process_index, process_count = _process(process_index, process_count)
  local_batch = local_batch_size(config, process_count)
  builder = datasets.prepared_builder(config)
  split = tfds.even_splits(config.train_split, process_count, drop_remainder=True)[process_index]
  num_examples = _num_examples(builder, split)
  _check_batch_fits(config, num_examples, process_count)
  stream_seed = tf.constant([seed % 2**32, process_index], tf.int64)
  view, draws = None, None
  squares = _device_squares(builder, config)
  if config.input.augment_on == "device" and not squares:
    view = functools.partial(_device_view, config=config, jpeg_squares=_is_jpeg_store(builder, config))
    draws = _view_draws(config, stream_seed=stream_seed, batch_size=local_batch, start_step=start_step)
  ds = _example_stream(
    builder,
    split,
    config,
    num_examples=num_examples,
    stream_seed=stream_seed,
    start=start_step * local_batch,
    view=view,
    draws=draws,
  )
  ds = ds.batch(local_batch, drop_remainder=True).enumerate(start=start_step)
  train_batch = functools.partial(
    _train_batch, config=config, stream_seed=stream_seed, pixels=_pixels(config, builder), device_squares=squares
  )
  ds = ds.map(train_batch, num_parallel_calls=tf.data.AUTOTUNE)
  return _reading(ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator(), builder, config)


def create_eval_iterator(
  config, *, process_index: int | None = None, process_count: int | None = None
) -> Iterator[Batch]:
  """One pass over this process's share of the eval split, padded: "image", "label" and "mask".

  "image" is (B, S, S, 3), or (B, V, S, S, 3) for V views per image (``config.input.eval_crops``);
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
  eval_batch = functools.partial(_eval_batch, config=config, pixels=_pixels(config, builder))
  ds = ds.map(eval_batch, num_parallel_calls=tf.data.AUTOTUNE)
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


def device_preprocessing(config) -> device_augment.DeviceAugment | None:
  """What the train step does to a ``"device"`` batch (None for ``"host"``: batches are final)."""
  if config.input.augment_on != "device":
    return None
  builder = datasets.prepared_builder(config)
  return device_augment.DeviceAugment(
    crop_size=config.input.crop_size, cut_squares=_device_squares(builder, config), **_pixels(config, builder)
  )


def local_batch_size(config, process_count: int = 1) -> int:
  """Each process's share of ``config.batch_size`` (the config itself is validated up front)."""
  if config.batch_size % process_count:
    raise ValueError(
      f"config.batch_size={config.batch_size} must be a positive multiple of the process count {process_count}"
    )
  return config.batch_size // process_count


def _example_stream(
  builder, split, config, *, num_examples: int, stream_seed: tf.Tensor, start: int, view=None, draws=None
) -> tf.data.Dataset:
  """Decoded training examples from stream position ``start`` on, forever.

  Epoch ``e`` is the split through a shuffle buffer seeded by (``stream_seed``, e). Small splits of
  fixed-size images are decoded during the first epoch and kept in memory; others are decoded after
  the skip to ``start``, so resuming decodes nothing it does not use. ``view(example, draw,
  decode=...)``, if given, makes each example's view in one parallel map, with the element of
  ``draws`` at the same stream position (``decode``: the decoding still to do, None if decoded).
  """
  prepare = _per_example_preparation(builder, config, training=True)
  records = _read(builder, split, shuffle_files=True, seed=int(stream_seed[0]))
  in_memory = _decoded_bytes(builder, num_examples, config) <= IN_MEMORY_LIMIT_BYTES
  if in_memory:
    logging.info(
      "Keeping the %d decoded training images in memory (%.0f MB%s)",
      num_examples,
      _decoded_bytes(builder, num_examples, config) / 2**20,
      ", as uint8 central squares" if _device_squares(builder, config) else "",
    )
    records = records.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).cache()

  def epoch(index):
    epoch_key = tf.random.experimental.stateless_fold_in(stream_seed, index)
    shuffle_seed = tf.random.stateless_uniform([], epoch_key, minval=None, maxval=None, dtype=tf.int64)
    return records.shuffle(config.input.shuffle_buffer, seed=shuffle_seed)

  first_epoch, skip = divmod(start, num_examples)
  ds = tf.data.Dataset.range(first_epoch, _FOREVER).flat_map(epoch).skip(skip)
  if view is None:
    return ds if in_memory else ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
  decode = None if in_memory else prepare
  return tf.data.Dataset.zip(ds, draws).map(
    lambda example, draw: view(example, draw, decode=decode), num_parallel_calls=tf.data.AUTOTUNE
  )


def _read(builder, split, *, shuffle_files: bool, seed: int = 0) -> tf.data.Dataset:
  """{"image": encoded bytes, "label": int32} of ``split``; files in a fixed order given ``seed``.

  Other features (ImageNet's file names) are not even parsed: ~20 CPU-us per image."""
  read_config = tfds.ReadConfig(shuffle_seed=seed, shuffle_reshuffle_each_iteration=False, try_autocache=False)
  decoders = {"image": tfds.decode.SkipDecoding()}
  if set(builder.info.features) - {"image", "label"}:
    decoders = tfds.decode.PartialDecoding({"image": True, "label": True}, decoders=decoders)
  ds = builder.as_dataset(split=split, shuffle_files=shuffle_files, read_config=read_config, decoders=decoders)
  return ds.map(lambda example: {"image": example["image"], "label": tf.cast(example["label"], tf.int32)})


def _per_example_preparation(builder, config, *, training: bool = False):
  """Decodes one example's image; images of varying size, and the training images of a
  ``"device"`` pipeline, also become central squares here (:func:`_device_squares`)."""
  feature = builder.info.features["image"]
  squares = not _fixed_size(builder) or (training and _device_squares(builder, config))

  def prepare(example):
    image = feature.decode_example(example["image"])
    if squares:
      image = augment.central_square(image, config.input.resize_size)
      if config.input.augment_on == "device":
        image = augment.to_uint8(image)  # uint8 from here on: a quarter of the bytes to batch
    return dict(example, image=image)

  return prepare


def _train_batch(step, batch, *, config, stream_seed, pixels, device_squares: bool) -> Batch:
  """The batch at ``step``, augmented with draws from the key (``stream_seed``, step).

  ``"device"``: images of varying size were cut per example (:func:`_device_view`), and only the
  colour-noise coefficients are drawn here; with ``device_squares`` (:func:`_device_squares`)
  fixed-size images arrive as uint8 squares, which the train step cuts (``device_augment.cut_views``)
  where the draws made here say: the same draws as :func:`_view_draws` makes from the same key."""
  seed = tf.random.experimental.stateless_fold_in(stream_seed, step)
  if config.input.augment_on == "device":
    batch_size = tf.shape(batch["label"])[0]
    alphas = augment.train_alphas(seed, batch_size, config.input.pca_noise_std)
    if not device_squares:
      return {**batch, "pca_alpha": alphas}
    image = augment.to_channels(batch["image"], config.model.in_channels)
    return {**batch, "image": image, **_crop_draws(config, seed, batch_size), "pca_alpha": alphas}
  views = augment.train_views(
    _batch_squares(batch["image"], config),
    seed,
    crop_size=config.input.crop_size,
    random_position=config.input.random_crop,
    flip=config.input.random_flip,
    lighting_std=config.input.pca_noise_std,
    channels=config.model.in_channels,
    **pixels,
  )
  return {"image": views, "label": batch["label"]}


def _view_draws(config, *, stream_seed, batch_size: int, start_step: int) -> tf.data.Dataset:
  """Each example's crop offset and flip from step ``start_step`` on, one element per example: the
  draws of its batch's key (``stream_seed``, step), made once per batch (:func:`_crop_draws`)."""

  def batch_draws(step):
    return _crop_draws(config, tf.random.experimental.stateless_fold_in(stream_seed, step), batch_size)

  return tf.data.Dataset.range(start_step, _FOREVER).map(batch_draws).unbatch()


def _crop_draws(config, seed: tf.Tensor, batch_size) -> dict[str, tf.Tensor]:
  """The crop offsets and flips of the batch whose key is ``seed`` (``augment.train_crop_draws``)."""
  size = config.input.resize_size
  return augment.train_crop_draws(
    seed,
    batch_size,
    size,
    size,
    crop_size=config.input.crop_size,
    random_position=config.input.random_crop,
    flip=config.input.random_flip,
  )


def _device_view(example, draw, *, decode, config, jpeg_squares: bool) -> dict:
  """One example as a uint8 view cut at ``draw`` (its "crop_offset" and "flip"), with the draw kept.

  A store's JPEG squares (``jpeg_squares``) are decoded only inside the patch
  (``decode_and_crop_jpeg``: ~20 % less work; the pixels equal a full decode's but for a few at
  the patch border, where libjpeg's chroma upsampling sees fewer neighbours)."""
  crop_size = config.input.crop_size
  offset, flipped = draw["crop_offset"], draw["flip"]
  if decode is not None and jpeg_squares:
    window = tf.concat([offset, [crop_size, crop_size]], axis=0)
    patch = augment.flip_if(tf.io.decode_and_crop_jpeg(example["image"], window, channels=3), flipped)
  else:
    image = example["image"] if decode is None else decode(example)["image"]
    square = augment.to_channels(_uint8_squares(image[None], config)[0], config.model.in_channels)
    patch = augment.cut(square, offset, flipped, crop_size)
  patch = tf.ensure_shape(patch, [crop_size, crop_size, config.model.in_channels])
  return {"image": patch, "label": example["label"], **draw}


def _eval_batch(batch, *, config, pixels) -> Batch:
  return {"image": eval_images(batch["image"], config, pixels), "label": batch["label"], "mask": batch["mask"]}


def eval_images(images: tf.Tensor, config, pixels: dict | None = None) -> tf.Tensor:
  """The run's test views of a batch: uint8 images of the dataset's fixed size, or central squares
  (float, from ``augment.central_square``), -> (B, S, S, C) or, for several views, (B, V, S, S, C),
  C = ``config.model.in_channels``.

  The eval iterator's preprocessing; ``alexnet_jax.predict`` applies it to image files. ``pixels``
  (:func:`_pixels`) defaults to those of the run's prepared dataset.
  """
  pixels = _pixels(config, datasets.prepared_builder(config)) if pixels is None else pixels
  return augment.eval_views(
    _batch_squares(images, config),
    crop_size=config.input.crop_size,
    crops=config.input.eval_crops,
    mean=pixels["mean"],
    std=pixels["std"],
    channels=config.model.in_channels,
  )


def _batch_squares(images: tf.Tensor, config) -> tf.Tensor:
  """Central squares of a batch in [0, 1]: uint8 images are resized here (if not squares yet), in one op."""
  if images.dtype == tf.uint8:
    return augment.central_square(images, config.input.resize_size)
  return images  # already squares, made per example


def _uint8_squares(images: tf.Tensor, config) -> tf.Tensor:
  """uint8 central squares of a batch: a store's and the per-example ones pass through as they are."""
  size = config.input.resize_size
  if images.dtype == tf.uint8 and tuple(images.shape[-3:-1]) == (size, size):
    return images
  return augment.to_uint8(_batch_squares(images, config))


def _is_jpeg_store(builder, config) -> bool:
  """Whether the images are a store's: JPEG squares of ``config.input.resize_size``, RGB."""
  feature, size = builder.info.features["image"], config.input.resize_size
  return tuple(feature.shape) == (size, size, 3) and feature.encoding_format == "jpeg"


def _fixed_size(builder) -> bool:
  return builder.info.features["image"].shape.count(None) == 0


def _device_squares(builder, config) -> bool:
  """Whether a ``"device"`` pipeline sends whole uint8 central squares, which the train step cuts:
  for fixed-size images (Fashion-MNIST, CIFAR-10), made once per image, and kept with an in-memory
  split (the resize is done once, not in every epoch; no tf.data map per example). Not a prepared
  store's JPEG squares, which are decoded only inside each patch (:func:`_device_view`). Test
  images keep the float resize of :func:`eval_images`, which ``predict`` shares."""
  return config.input.augment_on == "device" and _fixed_size(builder) and not _is_jpeg_store(builder, config)


def _decoded_bytes(builder, num_examples: int, config) -> float:
  """Memory the decoded images (or their uint8 squares) would take (inf for images of varying size)."""
  if not _fixed_size(builder):
    return math.inf
  shape = builder.info.features["image"].shape
  if _device_squares(builder, config):
    shape = (config.input.resize_size, config.input.resize_size, shape[-1])
  return num_examples * math.prod(shape)


def _pixels(config, builder) -> dict:
  """The normalisation and colour-noise constants: "mean" (per channel, or a store's mean image
  with ``config.input.mean == "image"``), "std" (``standardize``: the dataset's; ``subtract_mean``:
  the paper's centred raw pixels, (x - mean) * 255, i.e. std = 1/255), and the PCA noise's
  "eigenvectors" and "scales" (``options.pca_noise_basis``, from a store's statistics if any)."""
  mean, std = options.mean_std(config).values()
  stats = store.builder_stats(builder)
  if config.input.mean == "image":
    if stats is None:
      logging.log_first_n(
        logging.WARNING,
        "No prepared store of %s: subtracting the per-channel mean, not a mean image",
        1,
        config.dataset,
      )
    else:
      mean = stats["mean_image"].astype(np.float32)
  eigen = (stats["eigenvalues"], stats["eigenvectors"]) if stats is not None else (None, None)
  eigenvectors, scales = options.pca_noise_basis(config.input.pca_noise_form, *eigen)
  return {"mean": mean, "std": std, "eigenvectors": eigenvectors, "scales": scales}


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
