"""Throughput of the configured loader alone (no model), in images per second and CPU-us per image.

Compare it with the train step's images/s: on the same cores the loader must stay well ahead. The
first batch of an in-memory route also decodes the split; later ones show the steady state. CPU time
counts every thread of this process (grain's read-ahead threads included; the loader starts no other
process): on a shared or busy machine it is the steadier number, and it is what the loader takes
away from the train step.

``--synthetic`` (ImageNet configs) times the ImageNet path without ImageNet: it builds once, under
``--cache_dir``, a synthetic ``imagenet2012`` of natural-sized JPEGs (``synthetic_imagenet.py``),
prepares its store through ``prepare_store`` (when ``config.input.use_store``), and times the
training stream streaming from disk as it would on the full dataset (the ``STREAMED`` route, nothing
kept in memory). In the same run it times the bare decode of the same stored JPEGs with the loader's
own decoder (``images.decode``, one thread): ``decode_cpu_us_per_image``, the floor the stream's
``cpu_us_per_image`` is compared with. It also times the stream with 1, 2, 4, ... read threads up to
the usable cores (``images_per_second_by_readers``; ``read_threads`` is the default the config
resolves to) and the stream's CPU-us per image besides the decode (``reader_overhead_us_per_image``:
the decode replaced by a copy of a decoded square), the Python work that holds the GIL, whose
``1e6 / reader_overhead_us_per_image`` images/s no number of threads passes. ``--json`` prints one
JSON line instead of the text report.

  python -m alexnet_jax.benchmark_input --config=experiments/fashion_mnist.py --epochs=2
  python -m alexnet_jax.benchmark_input --config=experiments/imagenet2012.py --synthetic --json
"""

import dataclasses
import json
import os
import sys
import time

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from alexnet_jax import errors, flag_errors, outputs, utils
from alexnet_jax.data import datasets, images, input_spec, loader
from alexnet_jax.train import validation
from alexnet_jax.yardsticks.stream_timing import time_batches

_CONFIG = config_flags.DEFINE_config_file("config", flag_errors.DEFAULT_CONFIG, lock_config=True)
_EPOCHS = flags.DEFINE_integer("epochs", 2, "Training epochs to time, one at a time.", lower_bound=1)
_SYNTHETIC = flags.DEFINE_bool("synthetic", False, "Time the ImageNet path on a cached synthetic imagenet2012.")
_JSON = flags.DEFINE_bool("json", False, "Print one JSON line (the train stream's steady state) instead of text.")
_CACHE_DIR = flags.DEFINE_string(
  "cache_dir", "~/.cache/alexnet_jax/synthetic_imagenet", "--synthetic: where the source and its store are kept."
)
_SYNTHETIC_IMAGES = flags.DEFINE_integer(
  "synthetic_images", 2560, "--synthetic: train images to generate.", lower_bound=1
)
_TIMED_IMAGES = flags.DEFINE_integer(
  "timed_images", 5120, "--synthetic: images of the timed stream (after one batch).", lower_bound=1
)


class BenchmarkError(errors.UserError, ValueError):
  """Flags this benchmark cannot run with; the message says why."""


def time_eval_pass(spec: input_spec.InputSpec) -> float:
  """Images/s of one full pass over the eval split (padding included)."""
  start = time.perf_counter()
  count = sum(len(batch["label"]) for batch in loader.eval_batches(spec))
  return count / (time.perf_counter() - start)


def time_bare_decode(spec: input_spec.InputSpec, count: int) -> float:
  """CPU-us per image of decoding the first ``count`` stored train images with the loader's decoder,
  one thread, the records read beforehand (not timed)."""
  source = spec.source(spec.train_split)
  encoded = [record["image"] for record in source.__getitems__(list(range(min(count, len(source)))))]
  out = np.empty((spec.resize_size, spec.resize_size, spec.image_channels), np.uint8)
  cpu_start = time.process_time()
  for data in encoded:
    loader.square_into(data, out, spec)
  return 1e6 * (time.process_time() - cpu_start) / len(encoded)


def reader_counts(cores: int) -> list[int]:
  """The numbers of read threads timed: 1, 2, 4, ... and ``cores`` itself."""
  return sorted({2**k for k in range(cores.bit_length()) if 2**k <= cores} | {cores})


def time_stream(spec: input_spec.InputSpec, steps: int, **train_options) -> tuple[float, float]:
  """(images/s, CPU-us per image) of the next ``steps`` training batches of a fresh stream, after its first."""
  batches = loader.train_batches(spec, **train_options)
  next(batches)  # start-up: the first batches read ahead
  return time_batches(batches, steps, spec.batch_size)


def copy_of(square: np.ndarray) -> loader.Square:
  """A stand-in for :func:`loader.square_into` that copies ``square`` instead of decoding."""

  def copy_square(data: bytes, out: np.ndarray, spec: input_spec.InputSpec) -> None:
    del data, spec
    out[...] = square

  return copy_square


def reader_figures(spec: input_spec.InputSpec, steps: int) -> dict:
  """The stream's images/s by the number of read threads, and its CPU-us per image besides decoding:
  the JPEG decode replaced by copying an already-decoded square, read by one thread (with more, threads
  that do nothing but Python work queue for the GIL, and the queueing would be counted as the work)."""
  by_readers = {
    str(count): round(time_stream(dataclasses.replace(spec, read_threads=count), steps)[0], 1)
    for count in reader_counts(utils.usable_cores())
  }
  record = spec.source(spec.train_split)[0]
  square = np.empty((spec.resize_size, spec.resize_size, spec.image_channels), np.uint8)
  loader.square_into(record["image"], square, spec)
  _, overhead_us = time_stream(dataclasses.replace(spec, read_threads=1), steps, square=copy_of(square))
  return {"images_per_second_by_readers": by_readers, "reader_overhead_us_per_image": round(overhead_us, 1)}


def synthetic_result(config) -> dict:
  """Builds (once) the synthetic source and its store, then times the training stream from disk."""
  from alexnet_jax.data import prepare_store  # pylint: disable=g-import-not-at-top
  from alexnet_jax.yardsticks import synthetic_imagenet  # pylint: disable=g-import-not-at-top

  if config.dataset != "imagenet2012":
    raise BenchmarkError(f"--synthetic stands in for imagenet2012, not config.dataset={config.dataset!r}")
  config.data_dir = outputs.make_folder(os.path.expanduser(_CACHE_DIR.value))  # a read-only one: one line
  num_validation = max(config.batch_size, _SYNTHETIC_IMAGES.value // 10)
  start = time.perf_counter()
  synthetic_imagenet.prepare(config.data_dir, num_train=_SYNTHETIC_IMAGES.value, num_validation=num_validation)
  source_seconds = time.perf_counter() - start
  start = time.perf_counter()
  if config.input.use_store:
    prepare_store.prepare(config, progress=not _JSON.value)
  store_seconds = time.perf_counter() - start
  spec = dataclasses.replace(input_spec.build(config), route=input_spec.Route.STREAMED)  # as on 1.28M images
  steps = max(_TIMED_IMAGES.value // config.batch_size, 1)
  images_per_second, cpu_us = time_stream(spec, steps)
  decode_cpu_us = time_bare_decode(spec, steps * config.batch_size)
  return {
    "images_per_second": round(images_per_second, 1),
    "cpu_us_per_image": round(cpu_us, 1),
    "decode_cpu_us_per_image": round(decode_cpu_us, 1),
    "overhead_ratio": round(cpu_us / decode_cpu_us, 3),
    **reader_figures(spec, steps),
    "decoder": images.JPEG_DECODER,
    "cores": os.cpu_count(),
    "read_threads": spec.read_threads,
    "timed_images": steps * config.batch_size,
    "batch_size": config.batch_size,
    "store": bool(config.input.use_store),
    "route": spec.route.value,
    "source_seconds": round(source_seconds, 1),
    "store_seconds": round(store_seconds, 1),
    "synthetic_images": _SYNTHETIC_IMAGES.value,
  }


def main(argv):
  """The benchmark, with every failure the user can act on as one ``error:`` line and exit status 1."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    run(_CONFIG.value)
  except errors.UserError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)


def run(config) -> None:
  """Times the synthetic ImageNet stream (``--synthetic``) or the configured loader, and prints the numbers."""
  validation.validate(config)  # the trainer's own check: a batch of 0, a crop larger than the image, ...
  if _SYNTHETIC.value:
    result = synthetic_result(config)
    if _JSON.value:
      print(json.dumps(result))
    else:
      print(", ".join(f"{key} {value}" for key, value in result.items()))
    return
  datasets.prepare(config)
  spec = input_spec.build(config)
  steps_per_epoch = spec.steps_per_epoch
  print(f"{spec.describe()}; batch {spec.batch_size}, {steps_per_epoch} steps per epoch")
  start = time.perf_counter()
  batches = loader.train_batches(spec)
  next(batches)
  print(f"first batch after {time.perf_counter() - start:.1f} s")
  for epoch in range(_EPOCHS.value):
    steps = steps_per_epoch - (epoch == 0)
    rate, cpu = time_batches(batches, steps, config.batch_size)
    print(f"train epoch {epoch + 1}: {rate:,.0f} images/s, {cpu:.0f} CPU-us per image")
  print(f"eval (squares; the step cuts the {spec.eval_crops} views): {time_eval_pass(spec):,.0f} images/s")


if __name__ == "__main__":
  app.run(main)
