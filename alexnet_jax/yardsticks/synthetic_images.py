"""Synthetic natural-sized JPEGs with labels, generated on every core, in order, reproducibly.

Example ``index`` of a stream with seed ``seed`` is drawn from its own generator,
``np.random.default_rng((seed, index))``, so it is the same whichever process makes it and however
many there are. :func:`labelled_jpegs` yields a stream's examples in index order, made by a pool of
worker processes (one per usable core) when there are enough of them to pay for the pool's start.
This module imports only numpy and PIL: the workers start fast.
"""

from __future__ import annotations

import concurrent.futures
import io
import multiprocessing
from collections.abc import Iterator

import numpy as np
from PIL import Image

from alexnet_jax import utils

SIDES = (333, 500)  # inclusive range of each image's height and width
QUALITY = 90
NOISE_STD = 12.0  # grey levels: sets the JPEG size (~75 KB at these sides)
NUM_CLASSES = 1000
MIN_IMAGES_PER_WORKER = 256  # fewer per worker would spend more on starting the pool than on the images
CHUNK_IMAGES = 32  # images a worker makes per task: small enough to keep the order's head moving


def synthetic_jpeg(rng: np.random.Generator) -> bytes:
  """One JPEG of a random smooth colour field plus noise, each side in :data:`SIDES`."""
  height, width = (int(x) for x in rng.integers(SIDES[0], SIDES[1] + 1, 2))
  coarse = (rng.random((height // 24 + 2, width // 24 + 2, 3)) * 255).astype(np.uint8)
  image = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), np.float32)
  image = np.clip(image + rng.normal(0.0, NOISE_STD, image.shape), 0, 255).astype(np.uint8)
  encoded = io.BytesIO()
  Image.fromarray(image).save(encoded, format="JPEG", quality=QUALITY)
  return encoded.getvalue()


def labelled_jpeg(seed: int, index: int) -> tuple[bytes, int]:
  """Example ``index`` of the stream ``seed``: (JPEG bytes, label of :data:`NUM_CLASSES`)."""
  rng = np.random.default_rng((seed, index))
  return synthetic_jpeg(rng), int(rng.integers(NUM_CLASSES))


def worker_count(count: int, cores: int | None = None) -> int:
  """Processes to make ``count`` images with: one per core, each with at least :data:`MIN_IMAGES_PER_WORKER`."""
  return max(1, min(cores or utils.usable_cores(), count // MIN_IMAGES_PER_WORKER))


def labelled_jpegs(seed: int, count: int, *, workers: int | None = None) -> Iterator[tuple[bytes, int]]:
  """Examples ``0 .. count - 1`` of the stream ``seed``, in order, by ``workers`` processes
  (default :func:`worker_count`; 1: made here, no pool)."""
  workers = worker_count(count) if workers is None else workers
  if workers < 2:
    yield from (labelled_jpeg(seed, index) for index in range(count))
    return
  context = multiprocessing.get_context("spawn")  # fresh interpreters: no JAX or grain threads inherited
  with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
    yield from pool.map(labelled_jpeg, [seed] * count, range(count), chunksize=CHUNK_IMAGES)
