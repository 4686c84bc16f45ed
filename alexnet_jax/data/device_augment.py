"""The float half of the training augmentation, in jax.numpy, for the jitted train step.

tf.data, on the host, does the uint8 half -- the crop and the flip of each image, drawn by
``augment.train_crop_draws`` -- and draws each image's colour-noise coefficients; :func:`train_images`
adds that noise and subtracts the mean on the device, giving the views ``augment.train_views``
computes on the host from the same draws (the same formulas, see ``augment.py``). Small datasets
of fixed-size images send their whole uint8 squares instead, and the crop and flip happen here too
(:func:`cut_views`): a batch-wide slice on the device is cheaper than a tf.data map per example.
No TensorFlow here: the train step imports it.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


def cut_views(squares: jax.Array, offsets: jax.Array, flips: jax.Array, size: int) -> jax.Array:
  """(B, size, size, C): each square (B, R, R, C) cut at its (top, left) offset, and mirrored where
  ``flips`` says (``augment.cut`` on the host, batch-wide)."""
  channels = squares.shape[-1]
  crops = jax.vmap(lambda square, o: jax.lax.dynamic_slice(square, (o[0], o[1], 0), (size, size, channels)))(
    squares, offsets
  )
  return jnp.where(flips[:, None, None, None], crops[:, :, ::-1], crops)


def mean_crops(mean_image: jax.Array, offsets: jax.Array, flips: jax.Array, size: int) -> jax.Array:
  """(B, size, size, C): the mean image cut where each view was cut, and flipped where it was."""
  return cut_views(jnp.broadcast_to(mean_image, (offsets.shape[0], *mean_image.shape)), offsets, flips, size)


def train_images(
  batch: dict, *, crop_size: int, mean, std, eigenvectors, scales, cut_squares: bool = False
) -> jax.Array:
  """uint8 views (B, S, S, C) with their "crop_offset", "flip" and "pca_alpha" -> normalised float32.

  ``(x / 255 + P @ (alpha * scales) - mean) / std`` with ``mean`` per channel or a mean image
  (R, R, C) cut like each view. With ``cut_squares`` the images are whole uint8 squares, cut and
  flipped here first (:func:`cut_views`; also when a square is no larger than the crop: its flips).
  Grey views (C = 1, for a one-channel conv1) take no colour noise (config validation requires
  ``pca_noise_std`` 0 for them).
  """
  images = batch["image"]
  if cut_squares:
    images = cut_views(images, batch["crop_offset"], batch["flip"], crop_size)
  images = images.astype(jnp.float32) / 255.0
  if images.shape[-1] == 3:
    shift = (batch["pca_alpha"] * jnp.asarray(scales, jnp.float32)) @ jnp.asarray(eigenvectors, jnp.float32).T
    images = images + shift[:, None, None, :]
  mean = jnp.asarray(mean, jnp.float32)
  if mean.ndim == 3:
    images = images - mean_crops(mean, batch["crop_offset"], batch["flip"], crop_size)
    mean = jnp.zeros(mean.shape[-1:], jnp.float32)
  return (images - mean) / jnp.asarray(std, jnp.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class DeviceAugment:
  """:func:`train_images` with one dataset's constants (``pipeline.device_preprocessing`` builds it)."""

  crop_size: int
  mean: np.ndarray | tuple
  std: tuple
  eigenvectors: tuple
  scales: tuple
  cut_squares: bool = False  # the batches hold whole squares, which the step cuts and flips

  def __call__(self, batch: dict) -> jax.Array:
    return train_images(
      batch,
      crop_size=self.crop_size,
      mean=self.mean,
      std=self.std,
      eigenvectors=self.eigenvectors,
      scales=self.scales,
      cut_squares=self.cut_squares,
    )
