"""A stand-in for alexnet_jax.input_pipeline with the same interface (until the real one lands).

Images are noise with a class-dependent brightness, so a model can learn something; batches are a
pure function of (seed, step), as the real pipeline promises.
"""
import numpy as np

NUM_TRAIN, NUM_EVAL = 256, 40


class DatasetUnavailableError(ValueError):
  pass


def dataset_info(config):
  return NUM_TRAIN, NUM_EVAL, config.model.num_classes


def _examples(rng, count, config):
  size = config.input.crop_size
  labels = rng.integers(0, config.model.num_classes, count).astype(np.int32)
  images = rng.normal(size=(count, size, size, 3)).astype(np.float32)
  images += (labels / config.model.num_classes)[:, None, None, None].astype(np.float32)
  return images, labels


def create_train_iterator(config, *, seed, start_step=0, process_index=None, process_count=None):
  step = start_step
  while True:
    images, labels = _examples(np.random.default_rng([seed, step]), config.batch_size, config)
    yield {"image": images, "label": labels}
    step += 1


def create_eval_iterator(config, *, process_index=None, process_count=None):
  count = NUM_EVAL if config.eval_max_examples == -1 else min(NUM_EVAL, config.eval_max_examples)
  images, labels = _examples(np.random.default_rng(12345), count, config)
  for start in range(0, count, config.batch_size):
    image, label = images[start:start + config.batch_size], labels[start:start + config.batch_size]
    real = len(label)
    pad = config.batch_size - real
    image = np.concatenate([image, np.zeros((pad, *image.shape[1:]), np.float32)])
    label = np.concatenate([label, np.zeros((pad,), np.int32)])
    if config.input.eval_crops == "ten_crop":
      image = np.repeat(image[:, None], 10, axis=1)
    yield {"image": image, "label": label, "mask": (np.arange(config.batch_size) < real).astype(np.float32)}
