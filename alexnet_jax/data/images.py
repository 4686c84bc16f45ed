"""The host's share of the pixels: encoded bytes -> uint8 central squares. No float work, no TensorFlow.

Everything random or float (crops, flips, colour noise, the mean, the test views) happens in the
jitted step (``data/augment.py``); the host only turns an encoded image into the paper's §2 square:
the shorter side resized to ``size`` and the central ``size`` x ``size`` kept, or the whole image warped
to that square as Caffe did (:func:`central_square`, ``config.input.resize``).
JPEGs are decoded with libjpeg-turbo (``simplejpeg``, the fastest decoder measured here, see
``docs/measurements.md``); other formats, and the JPEGs it refuses (CMYK), with PIL.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import simplejpeg
from PIL import Image, UnidentifiedImageError

from alexnet_jax import errors
from alexnet_jax.data import options

_JPEG_MAGIC = b"\xff\xd8"
JPEG_DECODER = f"simplejpeg {simplejpeg.__version__} (libjpeg-turbo)"
_PIL_MODES = {1: "L", 3: "RGB"}
_PIL_FORMATS = "JPEG, PNG, GIF, BMP, WebP, TIFF, ..."


class ImageDecodeError(errors.UserError, ValueError):
  """Bytes that no decoder here reads as an image."""


def decode(data: bytes, channels: int, *, out: np.ndarray | None = None) -> np.ndarray:
  """uint8 (H, W, ``channels``) pixels of an encoded image (1: grey, 3: RGB; alpha dropped).

  ``out``: a C-contiguous uint8 array of exactly the decoded shape to write into (saves a copy).
  """
  if data[:2] == _JPEG_MAGIC:
    try:
      return simplejpeg.decode_jpeg(data, colorspace="GRAY" if channels == 1 else "RGB", buffer=out)
    except ValueError:  # CMYK and other JPEGs libjpeg-turbo's RGB path refuses: PIL converts them
      pass
  with _pil_image(data) as image:
    pixels = np.asarray(image.convert(_PIL_MODES[channels]))  # alpha dropped, grey <-> RGB (ITU-R 601)
  pixels = pixels.reshape(*pixels.shape[:2], channels)
  if out is None:
    return pixels
  out[...] = pixels
  return out


def encoded_size(data: bytes) -> tuple[int, int]:
  """(height, width) of an encoded image, from its header alone."""
  if data[:2] == _JPEG_MAGIC:
    try:
      height, width, _, _ = simplejpeg.decode_jpeg_header(data)
      return height, width
    except ValueError:
      pass
  with _pil_image(data) as image:
    width, height = image.size
  return height, width


@contextlib.contextmanager
def _pil_image(data: bytes):
  """The image PIL opens from ``data``; what it cannot open or decode is an :class:`ImageDecodeError`."""
  try:
    with Image.open(io.BytesIO(data)) as image:
      yield image
  except UnidentifiedImageError as error:
    raise ImageDecodeError(f"not a readable image (not a format PIL reads: {_PIL_FORMATS})") from error
  except (OSError, ValueError, Image.DecompressionBombError) as error:
    raise ImageDecodeError(f"not a readable image ({error})") from error


def central_square(image: np.ndarray, size: int, resize: str = options.SHORTER_SIDE) -> np.ndarray:
  """uint8 (H, W, C) -> uint8 (size, size, C) by the ``resize`` method (``options.RESIZES``), both with
  PIL's bilinear filter, antialiased when shrinking (as TensorFlow's ``antialias=True``):

  * ``"shorter_side"`` (the paper, cuda-convnet2): the shorter side resized to ``size``, aspect ratio
    kept, then the central square (offsets rounded down);
  * ``"warp"`` (Caffe): the whole image resized to ``size`` x ``size``.

  A square of that size already is returned as it is."""
  height, width, channels = image.shape
  if (height, width) == (size, size):
    return image
  picture = Image.fromarray(image[..., 0] if channels == 1 else image, _PIL_MODES[channels])
  if resize == options.WARP:
    box = None
  elif resize == options.SHORTER_SIDE:
    box = _central_box(height, width, size)
  else:
    raise ValueError(f"resize={resize!r} is not one of {options.RESIZES}")
  square = picture.resize((size, size), Image.BILINEAR, box=box)
  return np.asarray(square).reshape(size, size, channels)


def _central_box(height: int, width: int, size: int) -> tuple[float, float, float, float]:
  """The central ``size`` x ``size`` square of the image resized to shorter side ``size``, as a box in
  the input's coordinates: only that square of the resized image is computed."""
  scale = size / min(height, width)
  new_height, new_width = max(size, round(height * scale)), max(size, round(width * scale))
  top, left = (new_height - size) // 2, (new_width - size) // 2
  x_scale, y_scale = new_width / width, new_height / height
  return (left / x_scale, top / y_scale, (left + size) / x_scale, (top + size) / y_scale)


def encode_jpeg(square: np.ndarray, quality: int) -> bytes:
  """JPEG bytes of a uint8 (H, W, 3) image (libjpeg-turbo, 4:2:0 as PIL and TF encode by default)."""
  return simplejpeg.encode_jpeg(np.ascontiguousarray(square), quality=quality, colorspace="RGB", colorsubsampling="420")


def encode_png(image: np.ndarray) -> bytes:
  """Lossless PNG bytes of a uint8 (H, W, 1 or 3) image."""
  data = io.BytesIO()
  channels = image.shape[-1]
  Image.fromarray(image[..., 0] if channels == 1 else image, _PIL_MODES[channels]).save(data, format="PNG")
  return data.getvalue()
