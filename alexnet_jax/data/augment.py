"""The paper's data augmentation and test-time crops, as pure TensorFlow functions on image batches.

This is the one place to read what happens to a picture (Krizhevsky et al. 2012, sections 2 and 4.1):

- every image: shorter side resized to 256 (``resize_size``) and the central 256x256 kept
  (:func:`central_square`); grey images are replicated to three channels, or kept grey for a
  one-channel conv1 (:func:`to_channels`); the mean pixel is subtracted (:func:`normalize`: a
  per-channel mean, divided by a per-channel std or, for the paper's raw centred pixels, by 1/255).
  The mean is per channel, or a mean image (cuda-convnet2's and Caffe's 256x256x3), subtracted
  from the square before it is cropped, so each view loses the mean of its own pixels.
- train (:func:`train_views`): a random 224x224 (``crop_size``) patch, its horizontal reflection
  with probability 1/2, and "PCA colour" (lighting) noise: add ``[p1, p2, p3] @ [a1 s1, a2 s2, a3 s3]``
  with ``a_i ~ N(0, 0.1)`` drawn once per image, where ``p_i`` are the eigenvectors of the RGB pixel
  covariance of ImageNet and ``s_i`` each component's std (the authors' cuda-convnet2) or its
  eigenvalue (fb.resnet.torch); see ``options.pca_noise_basis``.
- the same draws without the float work (:func:`train_crop_draws`, :func:`cut`, :func:`train_alphas`): uint8 patches
  plus each image's crop offset, flip and colour coefficients, for the device to finish
  (``data/device_augment.py``).
- test (:func:`eval_views`): the centre patch; or it and its reflection; or the four corner
  patches, the centre patch and the reflections of all five ("ten crops"). The network's softmax is
  averaged over an image's views.

The random ops work on a whole batch (B, H, W, C) at once -- one op per batch rather than per image
is what keeps a 2-core machine free for the train step -- and draw every image's crop, flip and
colour noise from one explicit ``[2]`` int seed with stateless ops: the same seed gives the same
views, whatever the threading. Pixels are float32 in [0, 1] from :func:`central_square` until
:func:`normalize`.
"""

from __future__ import annotations

import tensorflow as tf

from alexnet_jax.data import options

# fb.resnet.torch's ImageNet colour PCA for [0, 1] pixels (not cuda-convnet's: its per-component
# stds are options.CUDA_CONVNET_PCA_STDDEVS); options.pca_noise_basis chooses the scales.
PCA_EIGENVALUES = options.PCA_EIGENVALUES
PCA_EIGENVECTORS = options.PCA_EIGENVECTORS
_AUTHORS_PCA = options.pca_noise_basis("cuda_convnet")  # the default (eigenvectors, scales)


def central_square(images: tf.Tensor, size: int) -> tf.Tensor:
  """uint8 (..., H, W, C) -> float32 in [0, 1], shorter side resized to ``size``, central square kept.

  One image of any size, or a batch of equally sized images. Squares already of that size (a
  prepared store's) are only rescaled.
  """
  if tuple(images.shape[-3:-1]) == (size, size):
    return tf.cast(images, tf.float32) / 255.0
  images = resize_shorter_side(tf.cast(images, tf.float32) / 255.0, size)
  return center_crop(images, size)


def to_uint8(images: tf.Tensor) -> tf.Tensor:
  """Float pixels in [0, 1] -> uint8 [0, 255], rounded to the nearest level."""
  return tf.cast(tf.round(tf.clip_by_value(images * 255.0, 0.0, 255.0)), tf.uint8)


def resize_shorter_side(images: tf.Tensor, size: int) -> tf.Tensor:
  """Scales (..., H, W, C) so that the shorter side is ``size``, keeping the aspect ratio.

  Bilinear; antialiased only when shrinking (enlarging gives the same pixels without it, 3x faster).
  Sizes known when the graph is built (fixed-size datasets) are resolved then, not per image.
  """
  if images.shape[-3:-1].is_fully_defined():
    height, width = images.shape[-3:-1]
    scale = size / min(height, width)
    new_size = [max(size, round(height * scale)), max(size, round(width * scale))]
    return tf.image.resize(images, new_size, method="bilinear", antialias=scale < 1)
  height, width = tf.unstack(tf.cast(tf.shape(images)[-3:-1], tf.float32))
  shorter = tf.minimum(height, width)
  new_size = tf.maximum(size, tf.cast(tf.round(tf.stack([height, width]) * size / shorter), tf.int32))
  return tf.cond(
    shorter > size,
    lambda: tf.image.resize(images, new_size, method="bilinear", antialias=True),
    lambda: tf.image.resize(images, new_size, method="bilinear"),
  )


def crop(images: tf.Tensor, top, left, size: int) -> tf.Tensor:
  """The ``size`` x ``size`` patch of (..., H, W, C) whose top-left pixel is (top, left)."""
  patch = images[..., top : top + size, left : left + size, :]
  return tf.ensure_shape(patch, images.shape[:-3].concatenate([size, size]).concatenate(images.shape[-1:]))


def center_crop(images: tf.Tensor, size: int) -> tf.Tensor:
  """The central ``size`` x ``size`` patch (offsets rounded down, as in :func:`ten_crops`)."""
  height, width = _spatial_size(images)
  return crop(images, (height - size) // 2, (width - size) // 2, size)


def centre_and_flip(images: tf.Tensor, size: int) -> tf.Tensor:
  """(B, H, W, C) -> (B, 2, size, size, C): the centre patch and its horizontal reflection."""
  centre = center_crop(images, size)
  return tf.stack([centre, tf.reverse(centre, axis=[2])], axis=1)


def ten_crops(images: tf.Tensor, size: int) -> tf.Tensor:
  """(B, H, W, C) -> (B, 10, size, size, C): top-left, top-right, bottom-left, bottom-right, centre,
  then the horizontal reflections of those five."""
  height, width = _spatial_size(images)
  bottom, right = height - size, width - size
  five = tf.stack(
    [
      crop(images, 0, 0, size),
      crop(images, 0, right, size),
      crop(images, bottom, 0, size),
      crop(images, bottom, right, size),
      center_crop(images, size),
    ],
    axis=1,
  )
  return tf.concat([five, tf.reverse(five, axis=[3])], axis=1)


def crop_offsets(batch_size, height, width, size: int, seed: tf.Tensor) -> tf.Tensor:
  """(B, 2) int32: each of B images' uniformly random (top, left) for a ``size`` x ``size`` patch."""
  positions = tf.cast(tf.stack([height - size + 1, width - size + 1]), tf.float32)
  draws = tf.random.stateless_uniform([batch_size, 2], seed)
  return tf.cast(draws * positions, tf.int32)


def crops_at(images: tf.Tensor, offsets: tf.Tensor, size: int) -> tf.Tensor:
  """(B, H, W, C) -> (B, size, size, C): image b's patch at ``offsets[b]`` (top, left); any dtype."""
  window = tf.range(size)
  images = tf.gather(images, offsets[:, :1] + window, axis=1, batch_dims=1)  # rows
  return tf.gather(images, offsets[:, 1:] + window, axis=2, batch_dims=1)  # columns


def random_crops(images: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
  """(B, H, W, C) -> (B, size, size, C), each patch at its own uniformly random position."""
  return crops_at(images, crop_offsets(tf.shape(images)[0], *_spatial_size(images), size, seed), size)


def flip_draws(batch_size, seed: tf.Tensor) -> tf.Tensor:
  """(B,) bool: which of B images to reflect, each with probability 1/2."""
  return tf.random.stateless_uniform([batch_size], seed) < 0.5


def flips_where(images: tf.Tensor, flip: tf.Tensor) -> tf.Tensor:
  """Image b of (B, H, W, C) reflected horizontally where ``flip[b]``; any dtype."""
  columns = tf.range(_spatial_size(images)[1])
  columns = tf.where(flip[:, None], columns[::-1], columns)  # (B, W): each image's column order
  return tf.gather(images, columns, axis=2, batch_dims=1)


def random_flips(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """Each image of (B, H, W, C) reflected horizontally with probability 1/2."""
  return flips_where(images, flip_draws(tf.shape(images)[0], seed))


def pca_alphas(batch_size, stddev: float, seed: tf.Tensor) -> tf.Tensor:
  """(B, 3) float32: each of B images' colour noise coefficients, ``alpha ~ N(0, stddev)``."""
  return tf.random.stateless_normal([batch_size, 3], seed=seed, stddev=stddev)


def pca_shift(alphas: tf.Tensor, eigenvectors, scales) -> tf.Tensor:
  """(B, 3) RGB shifts ``P @ (alpha_b * scales)`` from coefficients (B, 3)."""
  return tf.linalg.matmul(
    alphas * tf.constant(scales, tf.float32), tf.constant(eigenvectors, tf.float32), transpose_b=True
  )


def pca_lighting(images: tf.Tensor, stddev: float, seed: tf.Tensor, *, eigenvectors, scales) -> tf.Tensor:
  """Adds the paper's colour noise to RGB (B, H, W, 3): per image ``P @ (alpha * scales)``,
  ``alpha ~ N(0, stddev)`` (3 values), the same shift for every pixel of that image
  (``options.pca_noise_basis`` gives ``eigenvectors`` and ``scales``)."""
  shift = pca_shift(pca_alphas(tf.shape(images)[0], stddev, seed), eigenvectors, scales)
  return images + shift[:, None, None, :]


def to_channels(images: tf.Tensor, channels: int = 3) -> tf.Tensor:
  """Grey (..., 1) images replicated to ``channels``: 3 (RGB, as the paper feeds grey images) or 1
  (kept grey, for a one-channel conv1: the same function of the image, a third of conv1's work).
  Images that have ``channels`` already pass through."""
  if images.shape[-1] == channels:
    return images
  if images.shape[-1] != 1:
    raise ValueError(f"cannot make {channels}-channel images of {images.shape[-1]}-channel ones")
  return tf.tile(images, [1] * (images.shape.rank - 1) + [channels])


def normalize(images: tf.Tensor, mean, std) -> tf.Tensor:
  """``(images - mean) / std`` per channel (one value each for grey images)."""
  return (images - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def is_mean_image(mean) -> bool:
  """Whether ``mean`` is a mean image (H, W, C) rather than one value per channel."""
  return getattr(mean, "ndim", 1) == 3


def subtract_mean_image(squares: tf.Tensor, mean, std):
  """For a mean image: (squares - mean image, the per-channel mean left to subtract: zeros)."""
  if not is_mean_image(mean):
    return squares, mean
  return squares - tf.constant(mean, tf.float32), (0.0,) * len(std)


def view_seeds(seed: tf.Tensor) -> list[tf.Tensor]:
  """The batch key's three sub-keys: crop positions, flips, colour noise (one order everywhere)."""
  return tf.unstack(tf.random.experimental.stateless_split(seed, 3))


def train_crop_draws(
  seed: tf.Tensor, batch_size: int, height: int, width: int, *, crop_size: int, random_position=True, flip=True
) -> dict[str, tf.Tensor]:
  """The batch's {"crop_offset": (B, 2) int32 (top, left), "flip": (B,) bool}, drawn from ``seed``
  as :func:`train_views` draws them, for cutting each image on its own (:func:`cut`)."""
  crop_seed, flip_seed, _ = view_seeds(seed)
  if random_position:
    offsets = crop_offsets(batch_size, height, width, crop_size, crop_seed)
  else:
    offsets = tf.tile([[(height - crop_size) // 2, (width - crop_size) // 2]], [batch_size, 1])
  flips = flip_draws(batch_size, flip_seed) if flip else tf.zeros([batch_size], tf.bool)
  return {"crop_offset": tf.cast(offsets, tf.int32), "flip": flips}


def cut(square: tf.Tensor, offset: tf.Tensor, flipped: tf.Tensor, size: int) -> tf.Tensor:
  """The (size, size, C) patch of one image at ``offset``, reflected if ``flipped``: a plain slice
  (a batch-wide gather of 3-byte pixels costs more than the JPEG decode)."""
  patch = square[offset[0] : offset[0] + size, offset[1] : offset[1] + size]
  return flip_if(tf.ensure_shape(patch, [size, size, square.shape[-1]]), flipped)


def flip_if(patch: tf.Tensor, flipped: tf.Tensor) -> tf.Tensor:
  """One image (H, W, C) reflected horizontally if ``flipped`` (a scalar bool)."""
  return tf.cond(flipped, lambda: tf.reverse(patch, axis=[1]), lambda: patch)


def train_alphas(seed: tf.Tensor, batch_size: int, lighting_std: float) -> tf.Tensor:
  """The batch's colour-noise coefficients (B, 3) as :func:`train_views` draws them (zeros if off)."""
  if lighting_std <= 0:
    return tf.zeros([batch_size, 3])
  return pca_alphas(batch_size, lighting_std, view_seeds(seed)[2])


def train_views(
  squares: tf.Tensor,
  seed: tf.Tensor,
  *,
  crop_size: int,
  mean,
  std,
  random_position: bool = True,
  flip: bool = True,
  lighting_std: float = 0.0,
  eigenvectors=_AUTHORS_PCA[0],
  scales=_AUTHORS_PCA[1],
  channels: int = 3,
) -> tf.Tensor:
  """One normalised training view per image: central squares (B, R, R, C) -> (B, S, S, channels), S = crop_size.

  ``random_position=False`` takes the centre patch instead of a random one; ``lighting_std`` is the
  std of the PCA noise coefficients (0 disables it; the paper used 0.1), along ``eigenvectors``
  scaled by ``scales`` (``options.pca_noise_basis``; default: the authors' form on ImageNet's constants). ``mean``: one
  value per channel or a mean image (R, R, C). Without colour noise, grey images are normalised
  before they become RGB: the same numbers, a third of the work. ``channels``: what the model
  reads (:func:`to_channels`; colour noise needs 3).
  """
  squares, mean = subtract_mean_image(squares, mean, std)
  crop_seed, flip_seed, lighting_seed = view_seeds(seed)
  views = random_crops(squares, crop_size, crop_seed) if random_position else center_crop(squares, crop_size)
  if flip:
    views = random_flips(views, flip_seed)
  if lighting_std > 0:
    noisy = pca_lighting(to_channels(views, 3), lighting_std, lighting_seed, eigenvectors=eigenvectors, scales=scales)
    return normalize(noisy, mean, std)
  return to_channels(normalize(views, mean, std), channels)


EVAL_VIEWS = {"center": center_crop, "center_flip": centre_and_flip, "ten_crop": ten_crops}  # options.EVAL_CROPS


def eval_views(squares: tf.Tensor, *, crop_size: int, mean, std, crops: str = "center", channels: int = 3) -> tf.Tensor:
  """Normalised test views of central squares (B, R, R, C): centre patches (B, S, S, channels), or
  for ``crops="center_flip"`` / ``"ten_crop"`` (B, 2 or 10, S, S, channels). ``mean``: per channel or
  a mean image (R, R, C)."""
  squares, mean = subtract_mean_image(squares, mean, std)
  return to_channels(normalize(EVAL_VIEWS[crops](squares, crop_size), mean, std), channels)


def _spatial_size(images: tf.Tensor):
  """(height, width) of (..., H, W, C): Python ints when known statically, else scalar tensors."""
  static = images.shape[-3:-1]
  if static.is_fully_defined():
    return tuple(static)
  return tuple(tf.unstack(tf.shape(images)[-3:-1]))
