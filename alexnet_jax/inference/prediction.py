"""Classifying image files with a trained run: the run's own test preprocessing, then the top-5 classes.

An image file (PNG, JPEG, GIF, BMP or WebP, any size, grey or colour) is decoded, given the dataset's
channel count (colour -> grey for a grey dataset such as Fashion-MNIST, grey -> RGB for a colour one;
an alpha channel is dropped), and then prepared exactly as the eval iterator prepares a test image
(``data/augment.central_square`` with the run's resize side, then ``pipeline.eval_images``: the
centre crop or the ten crops, normalisation, grey replicated to RGB).
"""

from __future__ import annotations

import re

import numpy as np

from alexnet_jax.data import augment, pipeline, tf_host
from alexnet_jax.inference.trained_run import TrainedRun

tf = tf_host.tensorflow()

TOP = 5


class ImageError(ValueError):
  """An image file that cannot be read or decoded; the message names the file."""


def load_image(path: str, channels: int) -> np.ndarray:
  """The uint8 (H, W, ``channels``) pixels of the image file at ``path``; ImageError if unreadable."""
  try:
    image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
  except tf.errors.NotFoundError as error:
    raise ImageError(f"{path}: no such file") from error
  except tf.errors.OpError as error:
    raise ImageError(f"{path}: not a readable image ({_tf_message(error)})") from error
  return _with_channels(image, channels).numpy()


def _tf_message(error: tf.errors.OpError) -> str:
  """TensorFlow's message without the op and device names it wraps around it."""
  message = re.sub(r"\{\{.*?\}\}\s*", "", error.message.splitlines()[0] if error.message else "")
  return message.split(" [Op:")[0].strip() or type(error).__name__


def _with_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
  """Drops alpha, then colour -> grey (``channels == 1``) or grey -> RGB (``channels == 3``)."""
  image = image[..., :1] if image.shape[-1] == 2 else image[..., :3]
  if channels == 1 and image.shape[-1] == 3:
    return tf.image.rgb_to_grayscale(image)
  return augment.to_channels(image, channels)


def test_views(image: np.ndarray, config) -> np.ndarray:
  """One uint8 image (H, W, C) of any size -> the run's test views, (S, S, C) or (V, S, S, C)."""
  square = augment.central_square(tf.constant(image), config.input.resize_size)
  return pipeline.eval_images(square[None], config)[0].numpy()


def predict_files(run: TrainedRun, paths: list[str]) -> list[dict]:
  """One result per path, in order: ``{"file", "predictions": [{"label", "name", "probability"}] }``
  with the top-5 classes, or ``{"file", "error"}`` for a file that could not be read."""
  names, channels = run.label_names(), run.image_channels()
  results, views = [], []
  for path in paths:
    try:
      views.append(test_views(load_image(path, channels), run.config))
      results.append({"file": path})
    except ImageError as error:
      results.append({"file": path, "error": str(error)})
  if views:
    probabilities = iter(np.exp(run.log_probs(np.stack(views))))
    for result in results:
      if "error" not in result:
        result["predictions"] = top_classes(next(probabilities), names)
  return results


def top_classes(probabilities: np.ndarray, names: list[str], top: int = TOP) -> list[dict]:
  """The ``top`` most probable classes, most probable first."""
  order = np.argsort(-probabilities, kind="stable")[:top]
  return [{"label": int(i), "name": names[i], "probability": float(probabilities[i])} for i in order]


def format_results(results: list[dict]) -> str:
  """The predictions as text: the file, then one line per class with its probability."""
  lines = []
  for result in results:
    if "predictions" in result:
      lines.append(result["file"])
      lines += [f"  {p['probability']:7.2%}  {p['name']}" for p in result["predictions"]]
  return "\n".join(lines)
