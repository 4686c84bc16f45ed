"""The data options' names and each dataset's pixel statistics, without TensorFlow.

Config validation reads these lists; the pipeline implements what they name.
"""

from __future__ import annotations

# Per-channel mean and std of the training pixels in [0, 1] (one channel for grey images).
PIXEL_STATS = {
  # Computed once from Debian's train-images-idx3-ubyte.gz (60,000 images; tests recheck it).
  "fashion_mnist": ((0.2860406,), (0.3530242,)),
  "cifar10": ((0.4913997, 0.4821584, 0.4465309), (0.2470322, 0.2434851, 0.2615877)),
  "imagenet2012": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


DATASETS = tuple(PIXEL_STATS)
EVAL_CROPS = ("center", "ten_crop")  # augment.eval_views: the centre patch, or the paper's ten
NORMALIZATIONS = ("standardize", "subtract_mean")  # mean_std


def pixel_stats(dataset: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
  if dataset not in PIXEL_STATS:
    raise ValueError(f"config.dataset={dataset!r} is not supported; known: {sorted(PIXEL_STATS)}")
  return PIXEL_STATS[dataset]


def mean_std(config) -> dict[str, tuple[float, ...]]:
  """What the pipeline normalises with. ``standardize``: the dataset's mean and std.
  ``subtract_mean``: the paper's centred raw pixels, (x - mean) * 255, i.e. std = 1/255."""
  mean, std = pixel_stats(config.dataset)
  if config.input.normalization == "subtract_mean":
    std = (1 / 255,) * len(mean)
  return {"mean": mean, "std": std}
