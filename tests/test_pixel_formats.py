"""Every pixel format a decoder accepts maps to 8 bits by its real range, against numpy references.

``images.decode`` is the one decoder of the store (prepare_store), the loader and predict; a 16-bit
grey PNG read as PIL's ``L`` would clip to white (the bug this file guards against)."""

import io
import struct

import numpy as np
import pytest
from PIL import Image

from alexnet_jax.data import images

RNG = np.random.default_rng(0)
SHAPE = (5, 7)


def _encoded(image: Image.Image, fmt: str) -> bytes:
  data = io.BytesIO()
  image.save(data, format=fmt)
  return data.getvalue()


def _luma(rgb: np.ndarray) -> np.ndarray:
  """ITU-R 601 luma, rounded (PIL's RGB -> L)."""
  return np.rint(rgb.astype(np.float64) @ [0.299, 0.587, 0.114])


def _grey_cases():
  sixteen = RNG.integers(0, 65536, SHAPE, dtype=np.uint16)
  signed = RNG.integers(-(2**31), 2**31, SHAPE, dtype=np.int64).astype(np.int32)
  signed16 = RNG.integers(-(2**15), 2**15, SHAPE, dtype=np.int16)
  floats = RNG.uniform(-0.2, 1.2, SHAPE).astype(np.float32)  # outside [0, 1] is clipped
  return {
    "I;16 PNG": (
      _encoded(Image.fromarray(sixteen), "PNG"),
      np.rint(sixteen / 65535 * 255),
    ),
    "I;16 TIFF": (
      _encoded(Image.fromarray(sixteen), "TIFF"),
      np.rint(sixteen / 65535 * 255),
    ),
    "I signed 32-bit TIFF": (
      _encoded(Image.fromarray(signed, "I"), "TIFF"),
      np.rint((signed.astype(np.float64) + 2**31) / (2**32 - 1) * 255),
    ),
    "I unsigned 32-bit TIFF": (
      _as_unsigned_tiff(_encoded(Image.fromarray(signed, "I"), "TIFF")),
      np.rint(signed.view(np.uint32).astype(np.float64) / (2**32 - 1) * 255),
    ),
    "I signed 16-bit TIFF": (
      _signed_16_bit_tiff(signed16),
      np.rint((signed16.astype(np.float64) + 2**15) / (2**16 - 1) * 255),
    ),
    "F TIFF": (
      _encoded(Image.fromarray(floats, "F"), "TIFF"),
      np.rint(np.clip(floats.astype(np.float64), 0, 1) * 255),
    ),
  }


def _as_unsigned_tiff(data: bytes) -> bytes:
  """The little-endian TIFF with its SampleFormat (tag 339, one SHORT) set to 1, unsigned (PIL writes 2)."""
  signed_entry = (339).to_bytes(2, "little") + (3).to_bytes(2, "little") + (1).to_bytes(4, "little") + b"\x02\x00"
  assert data.count(signed_entry) == 1
  return data.replace(signed_entry, signed_entry[:-2] + b"\x01\x00")


def _signed_16_bit_tiff(samples: np.ndarray) -> bytes:
  """A minimal little-endian grey TIFF of int16 samples (BitsPerSample 16, SampleFormat 2), as scientific
  cameras write; PIL writes none (its int16 arrays become 32-bit) and reads one into mode I."""
  height, width = samples.shape
  pixels = samples.astype("<i2").tobytes()
  tags = {256: width, 257: height, 258: 16, 259: 1, 262: 1, 273: None, 277: 1, 278: height, 279: len(pixels), 339: 2}
  data_offset = 8 + 2 + 12 * len(tags) + 4
  entries = b"".join(
    struct.pack("<HHII", tag, 4, 1, data_offset) if value is None else struct.pack("<HHIHH", tag, 3, 1, value, 0)
    for tag, value in tags.items()
  )
  return b"II*\x00" + struct.pack("<IH", 8, len(tags)) + entries + struct.pack("<I", 0) + pixels


@pytest.mark.parametrize("case", list(_grey_cases()))
@pytest.mark.parametrize("channels", [1, 3])
def test_deep_grey_maps_by_its_formats_range(case, channels):
  data, expected = _grey_cases()[case]
  pixels = images.decode(data, channels)
  assert pixels.dtype == np.uint8 and pixels.shape == (*SHAPE, channels)
  np.testing.assert_array_equal(pixels, np.repeat(expected.astype(np.uint8)[..., None], channels, axis=-1))


def test_a_sixteen_bit_photo_is_not_predicted_as_white():
  """The reported case: mid-grey 16-bit pixels stay mid-grey (PIL's I;16 -> L conversion clipped them to 255)."""
  grey = np.full(SHAPE, 30_000, np.uint16)
  assert images.decode(_encoded(Image.fromarray(grey), "PNG"), 3).max() == round(30_000 / 65535 * 255)


def _rgb_cases():
  rgb = RNG.integers(0, 256, (*SHAPE, 3), dtype=np.uint8)
  rgba = np.concatenate([rgb, RNG.integers(0, 256, (*SHAPE, 1), dtype=np.uint8)], axis=-1)
  grey = RNG.integers(0, 256, SHAPE, dtype=np.uint8)
  grey_alpha = np.stack([grey, RNG.integers(0, 256, SHAPE, dtype=np.uint8)], axis=-1)
  bits = RNG.integers(0, 2, SHAPE).astype(bool)
  palette = RNG.integers(0, 256, (256, 3), dtype=np.uint8)
  indices = RNG.integers(0, 256, SHAPE, dtype=np.uint8)
  paletted = Image.fromarray(indices, "P")
  paletted.putpalette(palette.tobytes())
  transparent = paletted.copy()
  transparent.info["transparency"] = int(indices[0, 0])
  cmyk = RNG.integers(0, 256, (*SHAPE, 4), dtype=np.uint8)
  cmyk_rgb = np.rint((255 - cmyk[..., :3].astype(np.float64)) * (255 - cmyk[..., 3:].astype(np.float64)) / 255)
  return {
    "RGB PNG": (_encoded(Image.fromarray(rgb), "PNG"), rgb),
    "RGBA PNG (alpha dropped)": (_encoded(Image.fromarray(rgba, "RGBA"), "PNG"), rgb),
    "L PNG": (_encoded(Image.fromarray(grey), "PNG"), np.repeat(grey[..., None], 3, axis=-1)),
    "LA PNG (alpha dropped)": (_encoded(Image.fromarray(grey_alpha, "LA"), "PNG"), np.repeat(grey[..., None], 3, -1)),
    "1 PNG": (_encoded(Image.fromarray(bits), "PNG"), np.repeat(bits[..., None] * 255, 3, axis=-1)),
    "P PNG": (_encoded(paletted, "PNG"), palette[indices]),
    "P PNG with transparency": (_encoded(transparent, "PNG"), palette[indices]),
    "P GIF": (_encoded(paletted, "GIF"), palette[indices]),
    "RGB BMP": (_encoded(Image.fromarray(rgb), "BMP"), rgb),
    "CMYK TIFF": (_encoded(Image.fromarray(cmyk, "CMYK"), "TIFF"), cmyk_rgb),
  }


@pytest.mark.parametrize("case", list(_rgb_cases()))
def test_eight_bit_formats_against_numpy(case):
  data, expected_rgb = _rgb_cases()[case]
  np.testing.assert_array_equal(images.decode(data, 3), expected_rgb.astype(np.uint8))
  grey = images.decode(data, 1)
  assert grey.shape == (*SHAPE, 1)
  np.testing.assert_allclose(grey[..., 0], _luma(expected_rgb.astype(np.uint8)), atol=1)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_float_pixels_no_range_holds_are_refused_in_one_line(bad):
  floats = np.zeros(SHAPE, np.float32)
  floats[1, 2] = bad
  with pytest.raises(images.ImageDecodeError, match="NaN or infinite") as raised:
    images.decode(_encoded(Image.fromarray(floats, "F"), "TIFF"), 3)
  assert str(raised.value).count("not a readable image") == 1, raised.value  # said once, not wrapped thrice
