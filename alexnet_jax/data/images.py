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

  Every pixel format maps to 8 bits by its real range (:func:`eight_bit`): 16-bit integers by
  0..65535, 32-bit integers by their type's range, floats by 0..1; what cannot be mapped is an
  :class:`ImageDecodeError`. ``out``: a C-contiguous uint8 array of exactly the decoded shape to write
  into (saves a copy).
  """
  if data[:2] == _JPEG_MAGIC:
    try:
      return simplejpeg.decode_jpeg(data, colorspace="GRAY" if channels == 1 else "RGB", buffer=out)
    except ValueError:  # CMYK and other JPEGs libjpeg-turbo's RGB path refuses: PIL converts them
      pass
  with _pil_image(data) as image:
    pixels = eight_bit(image, channels)
  if out is None:
    return pixels
  out[...] = pixels
  return out


# PIL's modes of 16-bit integer pixels (PNG's and TIFF's 16-bit grey), read by their range 0..65535.
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_TIFF_SAMPLE_FORMAT, _TIFF_SIGNED, _TIFF_BITS_PER_SAMPLE = 339, 2, 258


def eight_bit(image: Image.Image, channels: int) -> np.ndarray:
  """uint8 (H, W, ``channels``) of a PIL image of any mode, each format's real range onto 0..255.

  8-bit modes (grey, RGB, palette, CMYK, YCbCr, LAB, bilevel, with or without alpha) through PIL's
  conversions (alpha dropped as torchvision's loader drops it; grey from RGB by ITU-R 601 luma; grey
  replicated to RGB). Deeper grey: 16-bit integers (``I;16*``) by 0..65535; 32-bit integers (``I``) by
  their type's range, signed or unsigned as a TIFF says (-2**31..2**31-1 or 0..2**32-1; a 16-bit signed
  TIFF, which PIL also reads as ``I``, by -32768..32767); floats (``F``)
  by 0..1, the float images' convention, values outside clipped. A value no range holds (NaN,
  infinity) or a mode PIL cannot convert is an :class:`ImageDecodeError`."""
  try:
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
      grey = _deep_grey(image)
      return np.repeat(grey[..., None], channels, axis=-1)
    pixels = np.asarray(image.convert(_PIL_MODES[channels]))
  except ImageDecodeError:  # already says what is wrong: not wrapped again
    raise
  except (OSError, ValueError) as error:
    raise ImageDecodeError(f"not a readable image ({error})") from error
  return pixels.reshape(*pixels.shape[:2], channels)


def _deep_grey(image: Image.Image) -> np.ndarray:
  """uint8 (H, W) of a grey image deeper than 8 bits, its range (:func:`eight_bit`) onto 0..255."""
  values = np.asarray(image)
  if image.mode == "F":
    if not np.isfinite(values).all():
      raise ImageDecodeError("not a readable image (float pixels that are NaN or infinite)")
    low, high = 0.0, 1.0
  elif image.mode == "I" and _tiff_tag(image, _TIFF_SAMPLE_FORMAT) == _TIFF_SIGNED:
    bits = _tiff_tag(image, _TIFF_BITS_PER_SAMPLE) or 32  # PIL reads 16-bit signed TIFFs into I too
    low, high = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
  elif image.mode == "I":  # PIL holds unsigned 32-bit samples in int32: read the same bits unsigned
    values, low, high = values.astype(np.int32).view(np.uint32), 0.0, 2.0**32 - 1
  else:
    low, high = 0.0, 65535.0
  scaled = (np.clip(values.astype(np.float64), low, high) - low) * (255.0 / (high - low))
  return np.rint(scaled).astype(np.uint8)


def _tiff_tag(image: Image.Image, tag: int):
  """A TIFF tag's value (the first sample's where it has one per sample); None elsewhere."""
  value = getattr(image, "tag_v2", {}).get(tag)
  return value[0] if isinstance(value, tuple) and value else value


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
  except ImageDecodeError:  # raised by the caller's decoding: already one message
    raise
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
