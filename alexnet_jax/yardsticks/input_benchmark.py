"""Throughput of the configured tf.data input pipeline alone (no model), in images per second.

Compare it with the train step's images/s: on the same cores the pipeline must stay well ahead.
The first epoch also reads and decodes the split (kept in memory for small datasets); later epochs
show the steady state. CPU time counts every core this process used: on a shared or busy machine it
is the steadier number, and it is what the pipeline takes away from the train step.

  python -m alexnet_jax.benchmark_input --config=experiments/fashion_mnist.py --epochs=2
"""

import time

from absl import app, flags
from ml_collections import config_flags

from alexnet_jax.data import pipeline

_CONFIG = config_flags.DEFINE_config_file("config", "experiments/fashion_mnist.py", lock_config=True)
_EPOCHS = flags.DEFINE_integer("epochs", 2, "Training epochs to time, one at a time.")


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


def main(argv):
  del argv
  config = _CONFIG.value
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
