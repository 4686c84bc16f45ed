"""The paper's data augmentation and test-time crops, as pure TensorFlow functions on one image.

This is the one place to read what happens to a picture (Krizhevsky et al. 2012, sections 2 and 4.1):

- train: shorter side resized to 256, the central 256x256 kept, a random 224 (here ``crop_size``)
  patch and its horizontal reflection taken at random, and "PCA colour" (lighting) noise: add
  ``[p1, p2, p3] @ [a1 l1, a2 l2, a3 l3]`` with ``a_i ~ N(0, 0.1)`` drawn once per image, where
  ``p_i, l_i`` are the eigenvectors and eigenvalues of the RGB pixel covariance of ImageNet.
- test: the four corner patches, the centre patch, and the reflections of all five ("ten crops");
  the network's softmax is averaged over them.
- grey images are replicated to three channels; the paper subtracts the mean pixel (here a per-
  channel mean, optionally divided by a per-channel std: :func:`normalize`).

Every random choice is a stateless op keyed by an explicit ``[2]`` int seed, so a given example at a
given position always receives the same crop, flip and colour noise, whatever the threading.
Images are float32 in [0, 1] (before :func:`normalize`), shape (H, W, 3).
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


def to_rgb(image: tf.Tensor) -> tf.Tensor:
  """Grey (H, W, 1) images replicated to three channels; RGB passes through."""
  return tf.image.grayscale_to_rgb(image) if image.shape[-1] == 1 else image


def resize_shorter_side(image: tf.Tensor, size: int) -> tf.Tensor:
  """Scales ``image`` so that its shorter side is ``size`` (aspect ratio kept; antialiased)."""
  height, width = tf.unstack(tf.cast(tf.shape(image)[:2], tf.float32))
  scale = size / tf.minimum(height, width)
  new_size = tf.maximum(size, tf.cast(tf.round(tf.stack([height, width]) * scale), tf.int32))
  return tf.image.resize(image, new_size, method="bilinear", antialias=True)


def crop(image: tf.Tensor, top, left, size: int) -> tf.Tensor:
  return tf.image.crop_to_bounding_box(image, top, left, size, size)


def center_crop(image: tf.Tensor, size: int) -> tf.Tensor:
  """The central ``size`` x ``size`` patch (offsets rounded down, as in :func:`ten_crops`)."""
  height, width = tf.shape(image)[0], tf.shape(image)[1]
  return crop(image, (height - size) // 2, (width - size) // 2, size)


def random_crop(image: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
  """A ``size`` x ``size`` patch at a uniformly random position."""
  return tf.image.stateless_random_crop(image, [size, size, image.shape[-1]], seed=seed)


def random_flip(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """The horizontal reflection with probability 1/2."""
  return tf.image.stateless_random_flip_left_right(image, seed=seed)


def pca_lighting(image: tf.Tensor, stddev: float, seed: tf.Tensor) -> tf.Tensor:
  """Adds the paper's PCA colour noise: ``P @ (alpha * eigenvalues)``, alpha ~ N(0, stddev) per image."""
  alpha = tf.random.stateless_normal([3], seed=seed, stddev=stddev)
  shift = tf.linalg.matvec(tf.constant(PCA_EIGENVECTORS), alpha * tf.constant(PCA_EIGENVALUES))
  return image + shift


def ten_crops(image: tf.Tensor, size: int) -> tf.Tensor:
  """(10, size, size, C): top-left, top-right, bottom-left, bottom-right, centre, then their flips."""
  height, width = tf.shape(image)[0], tf.shape(image)[1]
  bottom, right = height - size, width - size
  five = tf.stack([
      crop(image, 0, 0, size),
      crop(image, 0, right, size),
      crop(image, bottom, 0, size),
      crop(image, bottom, right, size),
      center_crop(image, size),
  ])
  return tf.concat([five, tf.reverse(five, axis=[2])], axis=0)


def normalize(image: tf.Tensor, mean, std) -> tf.Tensor:
  """Per-channel ``(image - mean) / std``; ``std=None`` only subtracts (the paper's centring)."""
  image = image - tf.constant(mean, tf.float32)
  return image if std is None else image / tf.constant(std, tf.float32)


def central_square(image: tf.Tensor, resize_size: int) -> tf.Tensor:
  """Decoded uint8 (H, W, C) -> RGB float32 in [0, 1], shorter side ``resize_size``, centre square kept."""
  image = tf.cast(to_rgb(image), tf.float32) / 255.0
  return center_crop(resize_shorter_side(image, resize_size), resize_size)


def train_image(image: tf.Tensor, seed: tf.Tensor, *, resize_size: int, crop_size: int,
                random_position: bool = True, flip: bool = True, lighting_std: float = 0.0) -> tf.Tensor:
  """One training view of a decoded image: (crop_size, crop_size, 3) float32, about [0, 1].

  ``random_position=False`` takes the centre patch instead of a random one; ``lighting_std`` is the
  std of the PCA noise coefficients (0 disables it; the paper used 0.1).
  """
  crop_seed, flip_seed, lighting_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
  image = central_square(image, resize_size)
  image = random_crop(image, crop_size, crop_seed) if random_position else center_crop(image, crop_size)
  if flip:
    image = random_flip(image, flip_seed)
  if lighting_std > 0:
    image = pca_lighting(image, lighting_std, lighting_seed)
  return image


def eval_image(image: tf.Tensor, *, resize_size: int, crop_size: int, ten_crop: bool = False) -> tf.Tensor:
  """The test view(s) of a decoded image: the centre patch (S, S, 3) or the ten crops (10, S, S, 3)."""
  image = central_square(image, resize_size)
  return ten_crops(image, crop_size) if ten_crop else center_crop(image, crop_size)
