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
import os
import stat

import numpy as np
import simplejpeg

from alexnet_jax import errors, utils
from alexnet_jax.data import images
from alexnet_jax.inference.trained_run import TrainedRun

TOP = 5
MAX_PIXELS = 64 * 2**20  # decoded per image at most (8192 x 8192; 200 MB as RGB)


class ImageError(errors.UserError, ValueError):
  """An image file that cannot be read or decoded; the message names the file."""


def load_image(path: str, channels: int) -> np.ndarray:
  """The uint8 (H, W, ``channels``) pixels of the image file at ``path``; ImageError if unreadable.

  Reads are bounded by design (:func:`read_image_file`). The size is read from the header before any
  decoding: a JPEG of more than :data:`MAX_PIXELS` is decoded at a reduced scale (libjpeg's DCT
  scaling, 1/2 to 1/8) that fits under it, any other image that large is refused in one line, so one
  file never takes more than a few hundred MB."""
  data = read_image_file(path)
  try:
    height, width = images.encoded_size(data)
    if height * width <= MAX_PIXELS:
      return images.decode(data, channels)
    return _reduced_jpeg(data, channels, height, width)
  except images.ImageDecodeError as error:
    raise ImageError(f"{path}: {error}") from error


MAX_FILE_BYTES = 256 * 2**20  # no image this command decodes is larger as a file
HEADER_BYTES = 64 * 2**10  # what is read first: every format's size is in it (a JPEG's unless EXIF is larger)


def read_image_file(path: str) -> bytes:
  """The bytes of the image file at ``path``, read with bounds: opened without blocking (a FIFO with no
  writer does not hang), refused unless a regular file of at most :data:`MAX_FILE_BYTES`, and refused
  after its first :data:`HEADER_BYTES` when they name no image format; only then read whole."""
  try:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
  except FileNotFoundError as error:
    raise ImageError(f"{path}: no such file") from error
  except OSError as error:
    raise ImageError(f"{path}: cannot be read ({error.strerror or error})") from error
  info = os.fstat(fd)
  if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
    os.close(fd)
    if not stat.S_ISREG(info.st_mode):
      raise ImageError(f"{path}: not a regular file ({utils.special_file_kind(info.st_mode)}); give an image file")
    raise ImageError(f"{path}: {info.st_size:,} bytes, more than the {MAX_FILE_BYTES:,} an image file may have")
  with os.fdopen(fd, "rb") as f:
    try:
      head = f.read(HEADER_BYTES)
      _check_header(path, head, info.st_size)
      return head + f.read(MAX_FILE_BYTES - len(head))
    except OSError as error:
      raise ImageError(f"{path}: cannot be read ({error.strerror or error})") from error


def _check_header(path: str, head: bytes, size: int) -> None:
  """Refuses a file whose first bytes are no image's (its size unreadable there), unless it is longer:
  a JPEG's size may follow EXIF blocks larger than the head."""
  try:
    images.encoded_size(head)
  except images.ImageDecodeError as error:
    if size <= len(head) or head[:2] != images._JPEG_MAGIC:
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
