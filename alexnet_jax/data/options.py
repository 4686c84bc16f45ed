"""The data options' names, without TensorFlow; each dataset's facts are its entry in ``registry.py``.

Config validation reads these lists; the pipeline implements what they name.
"""

from __future__ import annotations

from alexnet_jax.data import registry

# ImageNet's RGB colour PCA for pixels in [0, 1]: eigenvalues (variances) and eigenvectors (columns)
# as published by fb.resnet.torch. Their square roots match cuda-convnet2's per-component stds
# (sqrt(0.2175) * 255 = 118.9 ~ 121.78).
PCA_EIGENVALUES = (0.2175, 0.0188, 0.0045)
PCA_EIGENVECTORS = (
  (-0.5675, 0.7192, 0.4009),
  (-0.5808, -0.0045, -0.8140),
  (-0.5836, -0.6948, 0.4203),
)
# cuda-convnet2's ImageNet provider (``convdata.py``, ``input_meta``): the std of each principal
# component on [0, 255] pixels; it adds ``randn * 0.1 * sigma_i`` along eigenvector i.
CUDA_CONVNET_PCA_STDDEVS = (121.78, 37.09, 19.72)

DATASETS = registry.NAMES
# augment.eval_views: the centre patch; it and its mirror image; or the paper's ten crops. The
# softmax is averaged over a run's views; CENTER_VIEW says which of them is the plain centre patch.
EVAL_CROPS = ("center", "center_flip", "ten_crop")
EVAL_CROPS_WORDS = {"center": "centre crop", "center_flip": "centre crop and its flip", "ten_crop": "ten crops"}
CENTER_VIEW = {"center_flip": 0, "ten_crop": 4}
NORMALIZATIONS = ("standardize", "subtract_mean")  # mean_std
PCA_NOISE_FORMS = ("cuda_convnet", "fb_resnet")  # augment.pca_scales
MEANS = ("image", "channel")  # a prepared store's mean image, or one mean per channel
# Which crop of a mean image each view loses (augment.mean_parts): "at_view" (Caffe: the crop at the
# view's own offset, mirrored with it) or "center" (cuda-convnet2's convdata.py, data_mean_crop: the
# mean image's central crop, whatever the view). The same for a channel mean.
MEAN_CROPS = ("at_view", "center")
AT_VIEW, CENTER = MEAN_CROPS
# How an image becomes its square of resize_size (images.central_square): "shorter_side" (the paper and
# cuda-convnet2: the shorter side resized to it, the central square kept) or "warp" (Caffe: the whole
# image resized to the square, its aspect ratio lost).
RESIZES = ("shorter_side", "warp")
SHORTER_SIDE, WARP = RESIZES


def pca_noise_basis(form: str, eigenvalues=None, eigenvectors=None) -> tuple[tuple, tuple]:
  """(eigenvectors (3x3, columns), per-component scales) of the colour noise on [0, 1] pixels.

  The noise added to an image is ``eigenvectors @ (alpha * scales)``, ``alpha ~ N(0, pca_noise_std)``.
  ``form="cuda_convnet"`` (the authors' code): scales are each component's std, so alpha std 0.1 shifts
  pixels by 12.2 / 3.7 / 2.0 grey levels; ``"fb_resnet"``: scales are the eigenvalues themselves
  (5.5 / 0.48 / 0.12 levels). ``eigenvalues`` (variances of [0, 1] pixels) and ``eigenvectors`` come
  from a prepared store; without them, the published ImageNet constants above.
  """
  if form not in PCA_NOISE_FORMS:
    raise ValueError(f"config.input.pca_noise_form={form!r} is not one of {PCA_NOISE_FORMS}")
  if eigenvalues is None:
    eigenvectors = PCA_EIGENVECTORS
    if form == "cuda_convnet":
      return eigenvectors, tuple(s / 255 for s in CUDA_CONVNET_PCA_STDDEVS)
    return eigenvectors, PCA_EIGENVALUES
  eigenvalues = tuple(float(v) for v in eigenvalues)
  scales = tuple(max(v, 0.0) ** 0.5 for v in eigenvalues) if form == "cuda_convnet" else eigenvalues
  return tuple(tuple(float(x) for x in row) for row in eigenvectors), scales


def image_channels(dataset: str) -> int:
  """Channels of the dataset's images: 1 (grey) or 3 (RGB)."""
  return registry.get(dataset).channels


def mean_std(config) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """What the pipeline normalises with. ``standardize``: the dataset's mean and std.
  ``subtract_mean``: the paper's centred raw pixels, (x - mean) * 255, i.e. std = 1/255. A
  ``config.input.mean_pixel`` (0-255) replaces the dataset's mean."""
  facts = registry.get(config.dataset).facts(config)
  mean, std = facts.mean, facts.std
  if config.input.get("mean_pixel"):
    mean = tuple(value / 255 for value in config.input.mean_pixel)
  if config.input.normalization == "subtract_mean":
    std = (1 / 255,) * len(mean)
  return mean, std
