"""Classifying image files with a trained run: the run's own test preprocessing, then the top-5 classes.

An image file (PNG, JPEG, GIF, BMP or WebP, any size, grey or colour) is decoded with the dataset's
channel count (colour -> grey for a grey dataset such as Fashion-MNIST, grey -> RGB for a colour one;
an alpha channel is dropped) and made the run's square (``data/images.py``, by the run's
``config.input.resize``), exactly as the
loader makes a test image; the run's jitted test views (``data/augment.eval_views``: the centre crop,
its mirror or the ten crops, normalisation) follow. No TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np
import simplejpeg

from alexnet_jax import errors
from alexnet_jax.data import images
from alexnet_jax.inference.trained_run import TrainedRun

TOP = 5
MAX_PIXELS = 64 * 2**20  # decoded per image at most (8192 x 8192; 200 MB as RGB)


class ImageError(errors.UserError, ValueError):
  """An image file that cannot be read or decoded; the message names the file."""


def load_image(path: str, channels: int) -> np.ndarray:
  """The uint8 (H, W, ``channels``) pixels of the image file at ``path``; ImageError if unreadable.

  The size is read from the header before any decoding: a JPEG of more than :data:`MAX_PIXELS` is
  decoded at a reduced scale (libjpeg's DCT scaling, 1/2 to 1/8) that fits under it, any other image
  that large is refused in one line, so one file never takes more than a few hundred MB."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except FileNotFoundError as error:
    raise ImageError(f"{path}: no such file") from error
  except OSError as error:
    raise ImageError(f"{path}: cannot be read ({error.strerror or error})") from error
  try:
    height, width = images.encoded_size(data)
    if height * width <= MAX_PIXELS:
      return images.decode(data, channels)
    return _reduced_jpeg(data, channels, height, width)
  except images.ImageDecodeError as error:
    raise ImageError(f"{path}: {error}") from error


def _reduced_jpeg(data: bytes, channels: int, height: int, width: int) -> np.ndarray:
  """A JPEG larger than :data:`MAX_PIXELS` decoded at the smallest reduction that fits under it;
  ImageDecodeError for any other image that large, or a JPEG too large even at 1/8."""
  too_large = f"{width}x{height} pixels, more than the {MAX_PIXELS:,} this command decodes; shrink the image first"
  factor = math.sqrt(height * width / MAX_PIXELS)
  if data[:2] != images._JPEG_MAGIC or factor > 8:
    raise images.ImageDecodeError(too_large)
  colorspace = "GRAY" if channels == 1 else "RGB"
  scale = 2 ** math.ceil(math.log2(factor))  # 1/2, 1/4 or 1/8: libjpeg decodes at exactly that scale
  try:
    pixels = simplejpeg.decode_jpeg(
      data, colorspace=colorspace, min_height=-(-height // scale), min_width=-(-width // scale)
    )
  except ValueError as error:  # a JPEG libjpeg-turbo refuses (CMYK): PIL would decode all of it
    raise images.ImageDecodeError(f"{too_large} ({error})") from error
  return pixels.reshape(*pixels.shape[:2], channels)


def predict_files(run: TrainedRun, paths: list[str]) -> list[dict]:
  """One result per path, in order: ``{"file", "predictions": [{"label", "name", "probability"}] }``
  with the top-5 classes, or ``{"file", "error"}`` for a file that could not be read."""
  names, spec = run.label_names(), run.view_spec
  results, squares = [], []
  for path in paths:
    try:
      square = images.central_square(load_image(path, spec.image_channels), spec.resize_size, spec.resize)
      squares.append(square)
      results.append({"file": path})
    except ImageError as error:
      results.append({"file": path, "error": str(error)})
  if squares:
    probabilities = iter(np.exp(run.log_probs(np.stack(squares))))
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
