"""What a run's input is, decided once: :class:`InputSpec`, made by :func:`build` from the validated
config and the prepared dataset's metadata.

The loop, the loader (``loader.py``), the steps' augmentation (``augment.py``), evaluation and the
``evaluate`` / ``predict`` / ``figures`` commands all read the spec; nothing else opens the dataset's
metadata or works out the route again. It is plain data (picklable, printable).

The route (:class:`Route`) is the one decision about where the pixels come from:

- ``IN_MEMORY``: images of one fixed size (Fashion-MNIST, CIFAR-10, a small store) are decoded once,
  made uint8 central squares, and kept in memory (up to :data:`IN_MEMORY_LIMIT_BYTES`); a batch is
  one gather.
- ``STREAMED``: every batch is read from the ArrayRecord files and decoded (a store's JPEG squares;
  images of any size become central squares after decoding).

Either way the host sends uint8 central squares of ``resize_size`` and the step cuts the views.
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np
from absl import logging

from alexnet_jax import utils
from alexnet_jax.data import datasets, input_options, options, store
from alexnet_jax.rules import ConfigError

IN_MEMORY_LIMIT_BYTES = 2**30  # decoded squares of a train split up to this size are kept in memory


class Route(enum.Enum):
  IN_MEMORY = "in-memory squares"
  STREAMED = "streamed"


@dataclasses.dataclass(frozen=True, eq=False)
class _DerivedSpec:
  """What the config does not hold as such: counts and sizes of the prepared dataset, and the pixel
  statistics and colour noise basis that ``config.input``'s resolved options select."""

  dataset: str
  dataset_dir: str  # the prepared TFDS dataset (its version directory): a store's, or the source's
  train_split: str
  eval_split: str
  num_train: int
  num_eval: int  # after config.eval_max_examples
  num_classes: int
  label_names: tuple[str, ...]
  batch_size: int  # global
  image_size: tuple[int, int] | None  # (height, width) of every stored image; None: they vary
  image_channels: int  # of the stored images (1: grey)
  model_channels: int  # what conv1 reads (grey replicated to RGB when 3)
  route: Route
  read_threads: int  # streamed route: batches read and decoded at once (config.input.read_threads; 0 resolved)
  mean: np.ndarray  # (C,) per channel, or a mean image (R, R, C); [0, 1] pixels
  std: tuple[float, ...]
  eigenvectors: tuple  # colour noise basis (columns) and per-component scales
  scales: tuple
  seed: int


class _SpecMethods:
  """What a spec says beyond its fields (see :class:`InputSpec`)."""

  @property
  def steps_per_epoch(self) -> int:
    return max(self.num_train // self.batch_size, 1)

  @property
  def mean_image(self) -> bool:
    return self.mean.ndim == 3

  def local_batch(self, shard_count: int) -> int:
    """Each input shard's part of the global batch (``sharding.input_shard``)."""
    if self.batch_size % shard_count:
      raise ValueError(f"config.batch_size={self.batch_size} is not a multiple of the {shard_count} input shards")
    return self.batch_size // shard_count

  def source(self, split: str) -> datasets.ImageLabelRecords:
    """Random access to ``split``'s {"image": encoded bytes, "label": int} (TFDS's ArrayRecord files)."""
    return datasets.ImageLabelRecords(self.dataset_dir, split)

  def describe(self) -> str:
    mean = f"mean image, mean_crop={self.mean_crop}" if self.mean_image else "channel mean"
    return (
      f"{self.dataset}: {self.num_train} train / {self.num_eval} eval examples, {self.num_classes} classes, "
      f"{self.route.value} uint8 squares of {self.resize_size}, views of {self.crop_size} "
      f"({self.image_channels}->{self.model_channels} channels, {mean}, test views {self.eval_crops})"
    )


InputSpec = dataclasses.make_dataclass(
  "InputSpec",
  [(option.name, type(option.default)) for option in input_options.SPEC_OPTIONS],
  bases=(_DerivedSpec, _SpecMethods),
  frozen=True,
  eq=False,
  namespace={
    "__doc__": "Everything the input side of a run needs, derived once (see the module docstring): the "
    "dataset's counts and pixel statistics, and every option of ``input_options.SPEC_OPTIONS`` as configured.",
    "__module__": __name__,
  },
)


def build(config, *, in_memory_limit_bytes: int = IN_MEMORY_LIMIT_BYTES) -> InputSpec:
  """The spec of a validated ``config``: reads the prepared dataset's metadata (``datasets.prepare``
  made it readable; this changes nothing on the disk).

  Splits that do not exist or hold no examples, a dataset with another number of classes than the
  model's, and a batch larger than the train split are :class:`ConfigError`: the loop calls this
  before it writes anything."""
  builder = datasets.prepared(config)
  check_store_resize(config, builder)
  info = builder.info
  num_train = count_examples(builder, config.train_split, "config.train_split")
  num_eval = count_examples(builder, config.eval_split, "config.eval_split")
  if config.eval_max_examples > 0:
    num_eval = min(num_eval, config.eval_max_examples)
  labels = info.features["label"]
  if labels.num_classes != config.model.num_classes:
    raise ConfigError(
      f"config.model.num_classes={config.model.num_classes} but {config.dataset} has {labels.num_classes}"
    )
  if num_train < config.batch_size:
    raise ConfigError(
      f"config.batch_size={config.batch_size} exceeds the {num_train} training examples "
      f"(config.train_split={config.train_split!r})"
    )
  image_shape = tuple(info.features["image"].shape)
  size = config.input.resize_size
  square_bytes = num_train * size * size * image_shape[-1]
  fixed_size = None not in image_shape[:2]
  route = Route.IN_MEMORY if fixed_size and square_bytes <= in_memory_limit_bytes else Route.STREAMED
  spec = InputSpec(
    dataset_dir=str(builder.data_dir),
    num_train=num_train,
    num_eval=num_eval,
    num_classes=labels.num_classes,
    label_names=tuple(labels.names),
    image_size=tuple(image_shape[:2]) if fixed_size else None,
    image_channels=image_shape[-1],
    route=route,
    read_threads=config.input.read_threads or utils.usable_cores(),
    **config_fields(config, store.builder_stats(builder)),
  )
  logging.info("Input: %s", spec.describe())
  return spec


def config_fields(config, stats: dict | None) -> dict:
  """The InputSpec fields that come from the config alone (and a store's ``stats``): what :func:`build`
  and a spec without the dataset (predict on an imported run) share."""
  return {
    "dataset": config.dataset,
    "train_split": config.train_split,
    "eval_split": config.eval_split,
    "batch_size": config.batch_size,
    "model_channels": config.model.in_channels,
    "seed": config.seed,
    **pixel_constants(config, stats),
    **spec_inputs(config),
  }


def spec_inputs(config) -> dict:
  """Every option of ``input_options.SPEC_OPTIONS`` as ``config.input`` sets it, of its default's type
  (an integer noise std becomes a float)."""
  return {option.name: type(option.default)(config.input[option.name]) for option in input_options.SPEC_OPTIONS}


def check_store_resize(config, builder) -> None:
  """A store made by another resize method than ``config.input.resize`` is a :class:`ConfigError`:
  its squares would not be the ones the run's test images (and ``predict``) get."""
  made = store.builder_resize(builder)
  if made is not None and made != config.input.resize:
    raise ConfigError(
      f"config.input.resize={config.input.resize!r} but the store {builder.data_dir} was made with resize={made!r}: "
      f"run with --config.input.resize={made}, or move the store away and prepare it again with "
      f"python -m alexnet_jax.data.prepare_store --config.input.resize={config.input.resize} (the same config)"
    )


def pixel_constants(config, stats: dict | None) -> dict:
  """ "mean" (per channel, or a store's mean image with ``config.input.mean == "image"``), "std"
  (``standardize``: the dataset's; ``subtract_mean``: the paper's centred raw pixels, std 1/255),
  and the colour noise's "eigenvectors" and "scales" (``options.pca_noise_basis``, from a store's
  statistics where there is one)."""
  mean, std = options.mean_std(config)
  mean = np.asarray(mean, np.float32)
  if config.input.mean == "image":
    if config.input.get("mean_image_file"):  # an imported run's own (0-255 RGB, as the reference subtracted it)
      mean = np.load(config.input.mean_image_file).astype(np.float32) / 255.0
    elif stats is None:
      logging.warning("No prepared store of %s: subtracting the per-channel mean, not a mean image", config.dataset)
    else:
      mean = stats["mean_image"].astype(np.float32)
  eigen = (stats["eigenvalues"], stats["eigenvectors"]) if stats is not None else (None, None)
  eigenvectors, scales = options.pca_noise_basis(config.input.pca_noise_form, *eigen)
  return {"mean": mean, "std": tuple(std), "eigenvectors": eigenvectors, "scales": scales}


def split_examples(spec: InputSpec, split: str, name: str = "split") -> int:
  """Examples in ``split`` of the spec's dataset (any TFDS split string); :class:`ConfigError` if it
  does not exist or is empty (``name`` says which setting gave it)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  return count_examples(tfds.builder_from_directory(spec.dataset_dir), split, name)


def count_examples(builder, split: str, name: str) -> int:
  """Examples in ``split``; a split that does not exist or is empty is a :class:`ConfigError`."""
  try:
    count = builder.info.splits[split].num_examples
  except (ValueError, KeyError, AssertionError) as error:  # tfds: "Unknown split", bad slices
    raise ConfigError(
      f"{name}={split!r} cannot be read from {builder.name} ({' '.join(str(error).split())}); its splits are "
      f"{sorted(builder.info.splits)} (slices like 'train[:90%]' work too)"
    ) from error
  if count <= 0:  # tfds counts an empty or reversed slice ('test[:0]', 'test[5:2]') as 0 or fewer
    raise ConfigError(f"{name}={split!r} of {builder.name} holds no examples")
  return count
