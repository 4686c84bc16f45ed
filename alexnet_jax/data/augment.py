"""The paper's data augmentation and test views, written once, in JAX, run inside the jitted steps.

This is the one place to read what happens to a picture (Krizhevsky et al. 2012, §2 and §4.1). The
host sends uint8 central squares (``data/images.py``: shorter side resized to ``resize_size``, the
central square kept); from them:

- train (:func:`train_views`): a random ``crop_size`` patch (227 for ImageNet), its horizontal
  reflection with probability 1/2, and "PCA colour" noise: ``[p1, p2, p3] @ [a1 s1, a2 s2, a3 s3]``
  added to every pixel, ``a_i ~ N(0, pca_noise_std)`` drawn once per image, ``p_i`` the eigenvectors
  of the training set's RGB covariance and ``s_i`` each component's std (the authors' cuda-convnet2)
  or its eigenvalue (fb.resnet.torch; ``options.pca_noise_basis``); then the centred, coloured view
  times ``train_scale`` (cuda-convnet2 multiplies its training data by 1 / (1 + 0.1) after the noise, so
  that the noise does not make it larger than the test data; test views are not scaled).
- test (:func:`eval_views`): the centre patch; or it and its reflection; or the four corner patches,
  the centre patch and the reflections of all five ("ten crops", in that order).
- both: pixels scaled to [0, 1], the mean subtracted (:func:`centred_views`) -- per channel, or the
  store's 256x256x3 mean image, of which each view loses one crop (``mean_crop``, :func:`mean_parts`):
  the crop at the view's own offset, mirrored with it (``"at_view"``, Caffe's rule: the mean image is
  subtracted from the square before it is cut) or the mean image's central crop, whatever the view
  (``"center"``, cuda-convnet2's ``data_mean_crop``) -- and divided by the std (``subtract_mean``: the
  paper's centred raw pixels, std 1/255); grey images are replicated to RGB when the model reads
  three channels.

The draws (:func:`train_draws`) are a pure function of (seed, step) and of each example's position
in the global batch: ``fold_in(step key, position)``, so they do not depend on how many processes
read the batch, nor on the batch size. No host work and no TensorFlow.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alexnet_jax.data import options

# Separates the augmentation's random stream from the dropout stream of the same seed.
_AUGMENT_STREAM = 0x617567


def step_key(seed: int, step) -> jax.Array:
  """The key of the batch at ``step`` of a run seeded ``seed``."""
  return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _AUGMENT_STREAM), step)


def train_draws(key: jax.Array, batch_size: int, spec) -> dict[str, jax.Array]:
  """Each example's {"offset": (B, 2) int32 (top, left), "flip": (B,) bool, "alpha": (B, 3) float32}.

  Example ``j`` draws from ``fold_in(key, j)``. Off switches: ``spec.random_crop`` False takes the
  centre, ``spec.random_flip`` False never mirrors, ``spec.pca_noise_std`` 0 gives zero noise."""
  positions = spec.resize_size - spec.crop_size + 1
  center = central_offset(spec.resize_size, spec.crop_size)

  def one(index):
    crop_key, flip_key, noise_key = jax.random.split(jax.random.fold_in(key, index), 3)
    offset = jax.random.randint(crop_key, (2,), 0, positions) if spec.random_crop else jnp.full((2,), center)
    flip = jax.random.bernoulli(flip_key) if spec.random_flip else jnp.array(False)
    alpha = spec.pca_noise_std * jax.random.normal(noise_key, (3,))
    return {"offset": offset.astype(jnp.int32), "flip": flip, "alpha": alpha}

  return jax.vmap(one)(jnp.arange(batch_size))


def train_views(squares: jax.Array, draws: dict, spec) -> jax.Array:
  """uint8 squares (B, R, R, C) -> the model's float32 training input (B, S, S, model channels),
  cut, mirrored and coloured as ``draws`` (:func:`train_draws`) say."""
  views = centred_views(squares, spec, lambda images: cut(images, draws["offset"], draws["flip"], spec.crop_size))
  if spec.pca_noise_std > 0:
    views = views + colour_shift(draws["alpha"], spec.eigenvectors, spec.scales)[:, None, None, :]
  if spec.train_scale != 1.0:
    views = views * spec.train_scale
  return finish(views, spec)


def train_inputs(spec, batch: dict, step) -> jax.Array:
  """What the train step feeds the model at ``step``: :func:`train_views` of the batch's squares
  with the draws of that step's key."""
  draws = train_draws(step_key(spec.seed, step), batch["image"].shape[0], spec)
  return train_views(batch["image"], draws, spec)


def cut(images: jax.Array, offsets: jax.Array, flips: jax.Array, size: int) -> jax.Array:
  """(B, size, size, C): image b of (B, H, W, C) cut at ``offsets[b]`` (top, left), mirrored where ``flips[b]``."""
  channels = images.shape[-1]
  crops = jax.vmap(lambda image, o: jax.lax.dynamic_slice(image, (o[0], o[1], 0), (size, size, channels)))(
    images, offsets
  )
  return jnp.where(flips[:, None, None, None], crops[:, :, ::-1], crops)


def colour_shift(alphas: jax.Array, eigenvectors, scales) -> jax.Array:
  """(B, 3) RGB shifts ``P @ (alpha_b * scales)`` of the paper's colour noise, for [0, 1] pixels."""
  return (alphas * jnp.asarray(scales, jnp.float32)) @ jnp.asarray(eigenvectors, jnp.float32).T


def central_offset(square_size: int, crop_size: int) -> int:
  """Top (and left) of the central crop: half the margin, rounded down (cuda-convnet2's border_size)."""
  return (square_size - crop_size) // 2


def mean_parts(spec) -> tuple[jax.Array | float, jax.Array | float]:
  """The mean as (what comes off the squares before the views are cut, what comes off every cut view).

  ``spec.mean_crop`` ``"at_view"`` (Caffe): all of it off the squares, so each view loses the mean
  image's crop at its own offset, mirrored with it. ``"center"`` (cuda-convnet2, convdata.py
  ``data_mean_crop``): every view, whatever its offset and mirroring, loses the mean image's central
  ``crop_size`` crop as it is. A channel mean is the same at every pixel: off the squares either way."""
  mean = jnp.asarray(spec.mean, jnp.float32)
  if mean.ndim != 3 or spec.mean_crop == options.AT_VIEW:
    return mean, 0.0
  if spec.mean_crop != options.CENTER:
    raise ValueError(f"config.input.mean_crop={spec.mean_crop!r} is not one of {options.MEAN_CROPS}")
  top, size = central_offset(mean.shape[0], spec.crop_size), spec.crop_size
  return 0.0, mean[top : top + size, top : top + size]


def centred_views(squares: jax.Array, spec, cut_views) -> jax.Array:
  """``cut_views`` (float32 squares -> views) of the uint8 squares scaled to [0, 1], minus the mean:
  the one place it is subtracted, for training and test views alike (:func:`mean_parts`)."""
  before, after = mean_parts(spec)
  return cut_views(squares.astype(jnp.float32) / 255.0 - before) - after


def finish(views: jax.Array, spec) -> jax.Array:
  """Centred views divided by the std, grey replicated to RGB where the model reads three channels."""
  views = views / jnp.asarray(spec.std, jnp.float32)
  if views.shape[-1] != spec.model_channels:
    views = jnp.repeat(views, spec.model_channels, axis=-1)
  return views


def view_offsets(crops: str, square_size: int, crop_size: int) -> tuple[tuple[tuple[int, int], bool], ...]:
  """The test views of ``crops`` as ((top, left), mirrored) pairs, in the order :func:`eval_views` stacks them."""
  far, center = square_size - crop_size, central_offset(square_size, crop_size)
  if crops == "center":
    return (((center, center), False),)
  if crops == "center_flip":
    return (((center, center), False), ((center, center), True))
  if crops == "ten_crop":
    five = ((0, 0), (0, far), (far, 0), (far, far), (center, center))
    return tuple((o, False) for o in five) + tuple((o, True) for o in five)
  raise ValueError(f"config.input.eval_crops={crops!r} is not one of center, center_flip, ten_crop")


def eval_views(squares: jax.Array, spec) -> jax.Array:
  """uint8 squares (B, R, R, C) -> the normalised test views: (B, S, S, model channels) for the
  centre crop, (B, V, S, S, model channels) for ``center_flip`` (V = 2) and ``ten_crop`` (V = 10)."""
  return finish(centred_views(squares, spec, lambda images: cut_test_views(images, spec)), spec)


def cut_test_views(images: jax.Array, spec) -> jax.Array:
  """The views of ``spec.eval_crops`` cut from (B, R, R, C) images: (B, S, S, C) for one view,
  else (B, V, S, S, C) in :func:`view_offsets`' order."""
  size, views = spec.crop_size, []
  for (top, left), mirrored in view_offsets(spec.eval_crops, images.shape[1], size):
    view = images[:, top : top + size, left : left + size]
    views.append(view[:, :, ::-1] if mirrored else view)
  return views[0] if len(views) == 1 else jnp.stack(views, axis=1)
