"""A small folder of generated pictures, one sub-folder per class, for the image-folder dataset's tests.

Each class is a colour (its pixels that colour plus noise), the pictures of several sizes and of both
JPEG and PNG, so that a net can tell the classes apart after a few steps and the store's decoding,
squaring and statistics all see more than one shape."""

import os

import numpy as np

from alexnet_jax.data import images

COLOURS = {"blue": (30, 60, 220), "green": (40, 200, 60), "red": (220, 40, 30)}  # sorted: the labels' order


def picture(rng: np.random.Generator, colour, height: int, width: int) -> np.ndarray:
  """uint8 (height, width, 3): ``colour`` plus Gaussian noise of std 25 grey levels."""
  noisy = np.asarray(colour, np.float64) + rng.normal(0.0, 25.0, (height, width, 3))
  return np.clip(noisy, 0, 255).astype(np.uint8)


def write(folder, per_class: int = 24, seed: int = 0) -> str:
  """Writes ``per_class`` pictures of each colour into ``folder/<colour>/``; returns the folder's path."""
  rng = np.random.default_rng(seed)
  for name, colour in COLOURS.items():
    os.makedirs(os.path.join(folder, name), exist_ok=True)
    for index in range(per_class):
      height, width = rng.integers(64, 101, size=2)
      pixels = picture(rng, colour, int(height), int(width))
      data, suffix = (images.encode_png(pixels), "png") if index % 3 == 0 else (images.encode_jpeg(pixels, 95), "jpg")
      with open(os.path.join(folder, name, f"{name}_{index:03d}.{suffix}"), "wb") as f:
        f.write(data)
  return str(folder)
