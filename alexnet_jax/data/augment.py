"""The paper's data augmentation and test-time crops, as pure TensorFlow functions on image batches.

This is the one place to read what happens to a picture (Krizhevsky et al. 2012, sections 2 and 4.1):

- every image: shorter side resized to 256 (``resize_size``) and the central 256x256 kept
  (:func:`central_square`); grey images are replicated to three channels (:func:`to_rgb`); the
  mean pixel is subtracted (:func:`normalize`: a per-channel mean, divided by a per-channel std or,
  for the paper's raw centred pixels, by 1/255).
- train (:func:`train_views`): a random 224x224 (``crop_size``) patch, its horizontal reflection
  with probability 1/2, and "PCA colour" (lighting) noise: add ``[p1, p2, p3] @ [a1 l1, a2 l2, a3 l3]``
  with ``a_i ~ N(0, 0.1)`` drawn once per image, where ``p_i, l_i`` are the eigenvectors and
  eigenvalues of the RGB pixel covariance of ImageNet.
- test (:func:`eval_views`): the centre patch, or the four corner patches, the centre patch and the
  reflections of all five ("ten crops"), over which the network's softmax is averaged.

The random ops work on a whole batch (B, H, W, C) at once -- one op per batch rather than per image
is what keeps a 2-core machine free for the train step -- and draw every image's crop, flip and
colour noise from one explicit ``[2]`` int seed with stateless ops: the same seed gives the same
views, whatever the threading. Pixels are float32 in [0, 1] from :func:`central_square` until
:func:`normalize`.
"""

from __future__ import annotations

import tensorflow as tf

# ImageNet RGB eigenvalues and eigenvectors (columns) for pixels in [0, 1], as used by
# cuda-convnet / fb.resnet.torch for the paper's lighting noise.
PCA_EIGENVALUES = (0.2175, 0.0188, 0.0045)
PCA_EIGENVECTORS = (
  (-0.5675, 0.7192, 0.4009),
  (-0.5808, -0.0045, -0.8140),
  (-0.5836, -0.6948, 0.4203),
)


def central_square(images: tf.Tensor, size: int) -> tf.Tensor:
  """uint8 (..., H, W, C) -> float32 in [0, 1], shorter side resized to ``size``, central square kept.

  One image of any size, or a batch of equally sized images.
  """
  images = resize_shorter_side(tf.cast(images, tf.float32) / 255.0, size)
  return center_crop(images, size)


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


def random_crops(images: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
  """(B, H, W, C) -> (B, size, size, C), each patch at its own uniformly random position."""
  height, width = _spatial_size(images)
  positions = tf.cast(tf.stack([height - size + 1, width - size + 1]), tf.float32)
  draws = tf.random.stateless_uniform([tf.shape(images)[0], 2], seed)
  offsets = tf.cast(draws * positions, tf.int32)  # (B, 2): top, left
  window = tf.range(size)
  images = tf.gather(images, offsets[:, :1] + window, axis=1, batch_dims=1)  # rows
  return tf.gather(images, offsets[:, 1:] + window, axis=2, batch_dims=1)  # columns


def random_flips(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """Each image of (B, H, W, C) reflected horizontally with probability 1/2."""
  width = _spatial_size(images)[1]
  flip = tf.random.stateless_uniform([tf.shape(images)[0], 1], seed) < 0.5
  columns = tf.range(width)
  columns = tf.where(flip, columns[::-1], columns)  # (B, W): each image's column order
  return tf.gather(images, columns, axis=2, batch_dims=1)


def pca_lighting(images: tf.Tensor, stddev: float, seed: tf.Tensor) -> tf.Tensor:
  """Adds the paper's colour noise to RGB (B, H, W, 3): per image ``P @ (alpha * eigenvalues)``,
  ``alpha ~ N(0, stddev)`` (3 values), the same shift for every pixel of that image."""
  alpha = tf.random.stateless_normal([tf.shape(images)[0], 3], seed=seed, stddev=stddev)
  shift = tf.linalg.matmul(
    alpha * tf.constant(PCA_EIGENVALUES), tf.constant(PCA_EIGENVECTORS), transpose_b=True
  )  # row b: P @ (alpha_b * eigenvalues)
  return images + shift[:, None, None, :]


def to_rgb(images: tf.Tensor) -> tf.Tensor:
  """Grey (..., 1) images replicated to three channels; RGB passes through."""
  if images.shape[-1] != 1:
    return images
  return tf.tile(images, [1] * (images.shape.rank - 1) + [3])


def normalize(images: tf.Tensor, mean, std) -> tf.Tensor:
  """``(images - mean) / std`` per channel (one value each for grey images)."""
  return (images - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


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
) -> tf.Tensor:
  """One normalised training view per image: central squares (B, R, R, C) -> (B, S, S, 3), S = crop_size.

  ``random_position=False`` takes the centre patch instead of a random one; ``lighting_std`` is the
  std of the PCA noise coefficients (0 disables it; the paper used 0.1). Without colour noise, grey
  images are normalised before they become RGB: the same numbers, a third of the work.
  """
  crop_seed, flip_seed, lighting_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
  views = random_crops(squares, crop_size, crop_seed) if random_position else center_crop(squares, crop_size)
  if flip:
    views = random_flips(views, flip_seed)
  if lighting_std > 0:
    return normalize(pca_lighting(to_rgb(views), lighting_std, lighting_seed), mean, std)
  return to_rgb(normalize(views, mean, std))


def eval_views(squares: tf.Tensor, *, crop_size: int, mean, std, ten_crop: bool = False) -> tf.Tensor:
  """Normalised test views of central squares (B, R, R, C): centre patches (B, S, S, 3), or the ten
  crops (B, 10, S, S, 3)."""
  views = ten_crops(squares, crop_size) if ten_crop else center_crop(squares, crop_size)
  return to_rgb(normalize(views, mean, std))


def _spatial_size(images: tf.Tensor):
  """(height, width) of (..., H, W, C): Python ints when known statically, else scalar tensors."""
  static = images.shape[-3:-1]
  if static.is_fully_defined():
    return tuple(static)
  return tuple(tf.unstack(tf.shape(images)[-3:-1]))
