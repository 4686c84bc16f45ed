"""Throughput of the configured tf.data input pipeline alone (no model), in images per second.

Compare it with the train step's images/s: on the same cores the pipeline must stay well ahead.
The first epoch also reads and decodes the split (kept in memory for small datasets); later epochs
show the steady state. CPU time counts every core this process used: on a shared or busy machine it
is the steadier number, and it is what the pipeline takes away from the train step.

``--synthetic`` (ImageNet configs) times the ImageNet path without ImageNet: it builds once, under
``--cache_dir``, a synthetic ``imagenet2012`` of natural-sized JPEGs (``synthetic_imagenet.py``),
prepares its store through ``prepare_store`` (when ``config.input.use_store``), and times the
training stream streaming from disk as it would on the full dataset (nothing kept in memory).
``--json`` prints one JSON line instead of the text report.

  python -m alexnet_jax.benchmark_input --config=experiments/fashion_mnist.py --epochs=2
  python -m alexnet_jax.benchmark_input --config=experiments/imagenet2012.py --synthetic --json
"""

import json
import os
import time

from absl import app, flags
from ml_collections import config_flags

from alexnet_jax.data import pipeline

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/fashion_mnist.py", lock_config=True)
_EPOCHS = flags.DEFINE_integer("epochs", 2, "Training epochs to time, one at a time.")
_SYNTHETIC = flags.DEFINE_bool("synthetic", False, "Time the ImageNet path on a cached synthetic imagenet2012.")
_JSON = flags.DEFINE_bool("json", False, "Print one JSON line (the train stream's steady state) instead of text.")
_CACHE_DIR = flags.DEFINE_string(
  "cache_dir", "~/.cache/alexnet_jax/synthetic_imagenet", "--synthetic: where the source and its store are kept."
)
_SYNTHETIC_IMAGES = flags.DEFINE_integer("synthetic_images", 2560, "--synthetic: train images to generate.")
_TIMED_IMAGES = flags.DEFINE_integer("timed_images", 5120, "--synthetic: images of the timed stream (after one batch).")


def time_batches(batches, steps: int, batch_size: int) -> tuple[float, float]:
  """(images/s, CPU-microseconds per image) over the next ``steps`` batches of ``batches``."""
  start, cpu_start = time.perf_counter(), time.process_time()
  for _ in range(steps):
    next(batches)
  images = steps * batch_size
  return images / (time.perf_counter() - start), 1e6 * (time.process_time() - cpu_start) / images


def time_eval_pass(config) -> float:
  """Images/s of one full pass over the eval split (padding included)."""
  start = time.perf_counter()
  images = sum(len(batch["label"]) for batch in pipeline.create_eval_iterator(config))
  return images / (time.perf_counter() - start)


def synthetic_result(config) -> dict:
  """Builds (once) the synthetic source and its store, then times the training stream from disk."""
  from alexnet_jax.data import prepare_store  # pylint: disable=g-import-not-at-top
  from alexnet_jax.yardsticks import synthetic_imagenet  # pylint: disable=g-import-not-at-top

  if config.dataset != "imagenet2012":
    raise app.UsageError(f"--synthetic stands in for imagenet2012, not config.dataset={config.dataset!r}")
  config.data_dir = os.path.expanduser(_CACHE_DIR.value)
  num_validation = max(config.batch_size, _SYNTHETIC_IMAGES.value // 10)
  start = time.perf_counter()
  synthetic_imagenet.prepare(config.data_dir, num_train=_SYNTHETIC_IMAGES.value, num_validation=num_validation)
  source_seconds = time.perf_counter() - start
  start = time.perf_counter()
  if config.input.use_store:
    prepare_store.prepare(config, progress=not _JSON.value)
  store_seconds = time.perf_counter() - start
  pipeline.IN_MEMORY_LIMIT_BYTES = 0  # stream from disk, as on the full 1.28M images
  batches = pipeline.create_train_iterator(config, seed=config.seed)
  next(batches)  # start-up: the first shuffle buffer and autotuning
  steps = max(_TIMED_IMAGES.value // config.batch_size, 1)
  images_per_second, cpu_us = time_batches(batches, steps, config.batch_size)
  return {
    "images_per_second": round(images_per_second, 1),
    "cpu_us_per_image": round(cpu_us, 1),
    "cores": os.cpu_count(),
    "timed_images": steps * config.batch_size,
    "batch_size": config.batch_size,
    "store": bool(config.input.use_store),
    "augment_on": config.input.augment_on,
    "source_seconds": round(source_seconds, 1),
    "store_seconds": round(store_seconds, 1),
    "synthetic_images": _SYNTHETIC_IMAGES.value,
  }


def main(argv):
  del argv
  config = _CONFIG.value
  if _SYNTHETIC.value:
    result = synthetic_result(config)
    if _JSON.value:
      print(json.dumps(result))
    else:
      print(", ".join(f"{key} {value}" for key, value in result.items()))
    return
  num_train, _, _ = pipeline.dataset_info(config)
  steps_per_epoch = num_train // config.batch_size
  print(
    f"{config.dataset}: batch {config.batch_size}, crop {config.input.crop_size}, {steps_per_epoch} steps per epoch"
  )
  start = time.perf_counter()
  batches = pipeline.create_train_iterator(config, seed=config.seed)
  next(batches)
  print(f"first batch after {time.perf_counter() - start:.1f} s")
  for epoch in range(_EPOCHS.value):
    steps = steps_per_epoch - (epoch == 0)
    rate, cpu = time_batches(batches, steps, config.batch_size)
    print(f"train epoch {epoch + 1}: {rate:,.0f} images/s, {cpu:.0f} CPU-us per image")
  print(f"eval ({config.input.eval_crops}): {time_eval_pass(config):,.0f} images/s")


if __name__ == "__main__":
  app.run(main)
