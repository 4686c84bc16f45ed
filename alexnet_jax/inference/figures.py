"""The paper's figures from one checkpoint of a run (Krizhevsky et al. 2012, Figures 3 and 4).

* Figure 3 (:func:`figure3`): the conv1 kernels, one block per tower (``train/summaries.kernel_grid``,
  the picture the run also sends to TensorBoard).
* Figure 4, left (:func:`figure4_left`): test images, each with its true label and the model's
  top-5 classes as probability bars (the true class's bar in red, as in the paper).
* Figure 4, right (:func:`figure4_right`): query test images (first column), each followed by the
  training images whose fc7 feature vectors (the activations after fc7's ReLU, dropout off; see
  ``AlexNet.fc7_features``) are nearest in Euclidean distance. The training images searched are the
  first ``pool`` of the train split, prepared as test images (centre crop, no flip).

Images come from the run's own loader (``data/loader.py``) as uint8 central squares; the model sees
its test views of them, and they are shown as its centre crop. PNGs are drawn at :data:`DPI` with matplotlib (Agg).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable

import jax
import numpy as np

from alexnet_jax import outputs, utils
from alexnet_jax.data import augment
from alexnet_jax.inference.prediction import top_classes
from alexnet_jax.inference.trained_run import TrainedRun
from alexnet_jax.train import summaries

DPI = 100
MAX_PNG_BYTES = 300_000  # small enough to commit; a larger drawing is stored with a 256-colour palette
NEIGHBOURS = 6  # the paper's Figure 4 shows six per query
PER_ROW = 4  # Figure 4 left: examples per row
MAX_EXAMPLES = 64  # Figure 4 left: 16 rows, 48 inches; more is no longer a figure
MAX_QUERIES = 32  # Figure 4 right: rows
FILES = {"figure3": "figure3_conv1_kernels.png", "left": "figure4_left.png", "right": "figure4_right.png"}


def output_paths(out_dir: str, *, overwrite: bool = False) -> dict[str, str]:
  """The figures' paths in ``out_dir``, made if missing; each checked as an output (``alexnet_jax/outputs.py``)
  before anything is computed: an existing figure is replaced only when ``overwrite``."""
  outputs.make_folder(out_dir)
  return {name: outputs.check(os.path.join(out_dir, file), overwrite=overwrite) for name, file in FILES.items()}


def write_all(
  run: TrainedRun,
  out_dir: str,
  *,
  examples: int = 8,
  queries: int = 5,
  pool: int = 10_000,
  overwrite: bool = False,
  report: Callable[[str], None] = lambda message: None,
) -> list[str]:
  """Figures 3 and 4 (left and right) of ``run`` as PNGs in ``out_dir``; returns their paths.
  ``report`` hears a line as each figure starts (the neighbour search can take a while)."""
  paths = output_paths(out_dir, overwrite=overwrite)
  figure3(run, paths["figure3"], overwrite=overwrite)
  report(f"figure 4 left: {examples} test images with their top-5 classes")
  test_squares, test_labels = examples_of(run, run.config.eval_split, max(examples, queries))
  figure4_left(run, test_squares[:examples], test_labels[:examples], paths["left"], overwrite=overwrite)
  report(f"figure 4 right: {queries} queries, nearest neighbours among up to {pool} training images")
  train_squares, _ = examples_of(run, run.config.train_split, pool)
  figure4_right(run, test_squares[:queries], train_squares, paths["right"], overwrite=overwrite)
  return list(paths.values())


def examples_of(run: TrainedRun, split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
  """The first ``count`` examples of ``split`` (fewer if it is smaller) as uint8 central squares, and their labels."""
  from alexnet_jax.data import input_spec, loader  # pylint: disable=g-import-not-at-top

  count = min(count, input_spec.split_examples(run.spec, split))
  squares, labels = [], []
  for batch in loader.eval_batches(run.spec, split=split, num_examples=count):
    real = batch["mask"] > 0
    squares.append(batch["image"][real])
    labels.append(batch["label"][real])
  return np.concatenate(squares), np.concatenate(labels)


def displayable(run: TrainedRun, squares: np.ndarray) -> np.ndarray:
  """uint8 central squares (N, R, R, C) -> their centre crops as the model sees them, in [0, 1]."""
  (top, left), _ = augment.view_offsets("center", squares.shape[1], run.spec.crop_size)[0]
  size = run.spec.crop_size
  return squares[:, top : top + size, left : left + size].astype(np.float32) / 255.0


def nearest_neighbours(queries: np.ndarray, pool: np.ndarray, count: int = NEIGHBOURS) -> np.ndarray:
  """(Q, count) indices into ``pool`` of each query's nearest feature vectors, nearest first."""
  distances = (queries**2).sum(1)[:, None] - 2.0 * queries @ pool.T + (pool**2).sum(1)[None, :]
  return np.argsort(distances, axis=1, kind="stable")[:, :count]


def figure3(run: TrainedRun, path: str, *, overwrite: bool = False) -> None:
  """The conv1 kernels, tower 1 above tower 2, with a white gap between the towers."""
  grids = list(summaries.conv1_kernel_images(np.asarray(jax.device_get(run.params["convs"][0]["kernel"]))).values())
  gap = np.ones((grids[0].shape[0] // 8 + 1, grids[0].shape[1], 3), np.float32)
  picture = np.concatenate([part for grid in grids for part in (gap, grid)][1:], axis=0)
  outputs.write(path, lambda f: utils.pyplot().imsave(f, picture, format="png"), overwrite=overwrite)


def figure4_left(run: TrainedRun, views: np.ndarray, labels: np.ndarray, path: str, *, overwrite=False) -> None:
  """Each test image over its top-5 probability bars; the true class's bar is red."""
  plt = utils.pyplot()
  names, images = run.label_names(), displayable(run, views)
  probabilities = np.exp(run.log_probs(views))
  rows, columns = math.ceil(len(views) / PER_ROW), min(PER_ROW, len(views))
  fig = plt.figure(figsize=figure4_left_size(len(views)), dpi=DPI)
  grid = fig.add_gridspec(
    2 * rows,
    columns,
    height_ratios=[1.6, 1.0] * rows,
    hspace=0.45,
    wspace=0.9,
    left=0.1,
    right=0.98,
    top=0.94,
    bottom=0.05,
  )
  for index, (image, label, probs) in enumerate(zip(images, labels, probabilities)):
    row, column = divmod(index, PER_ROW)
    picture = fig.add_subplot(grid[2 * row, column])
    picture.imshow(image, interpolation="nearest")
    picture.set_title(names[label], fontsize=8)
    picture.axis("off")
    bars = fig.add_subplot(grid[2 * row + 1, column])
    top = top_classes(probs, names)
    colours = ["tab:red" if t["label"] == label else "tab:blue" for t in top]
    bars.barh(range(len(top)), [t["probability"] for t in top], color=colours)
    bars.set_yticks(range(len(top)), [t["name"] for t in top], fontsize=6)
    bars.invert_yaxis()
    bars.set_xlim(0, 1)
    bars.tick_params(axis="x", labelsize=6)
  try:
    save_png(fig, path, overwrite=overwrite)
  finally:
    plt.close(fig)


def figure4_left_size(count: int) -> tuple[float, float]:
  """Figure 4 left's size in inches for ``count`` test images (pixels: times :data:`DPI`)."""
  return (2.2 * min(PER_ROW, count), 3.0 * math.ceil(count / PER_ROW))


def figure4_right(run: TrainedRun, queries: np.ndarray, pool: np.ndarray, path: str, *, overwrite=False) -> None:
  """Each query test image (left column) and the training images nearest to it in fc7 space."""
  plt = utils.pyplot()
  neighbours = nearest_neighbours(run.fc7_features(queries), run.fc7_features(pool), min(NEIGHBOURS, len(pool)))
  query_images, pool_images = displayable(run, queries), displayable(run, pool)
  fig, axes = plt.subplots(
    len(queries), neighbours.shape[1] + 1, figsize=figure4_right_size(len(queries), neighbours.shape[1]), dpi=DPI
  )
  axes = np.asarray(axes).reshape(len(queries), -1)
  for row, (query, nearest) in enumerate(zip(query_images, neighbours)):
    for column, image in enumerate([query, *pool_images[nearest]]):
      axes[row, column].imshow(image, interpolation="nearest")
      axes[row, column].axis("off")
  axes[0, 0].set_title("test image", fontsize=8)
  axes[0, 1].set_title(f"nearest in fc7 among {len(pool)} training images", fontsize=8, loc="left")
  fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.92, wspace=0.05, hspace=0.05)
  try:
    save_png(fig, path, overwrite=overwrite)
  finally:
    plt.close(fig)


def figure4_right_size(queries: int, neighbours: int = NEIGHBOURS) -> tuple[float, float]:
  """Figure 4 right's size in inches (pixels: times :data:`DPI`)."""
  return (1.1 * (neighbours + 1), 1.1 * queries + 0.3)


def save_png(fig, path: str, *, overwrite: bool = False) -> None:
  """``fig`` as a PNG at :data:`DPI`, palette-quantised if it would exceed :data:`MAX_PNG_BYTES`
  (photographs and noise compress poorly; the figures stay the same size in pixels)."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=DPI)
  data = buffer.getvalue()
  if len(data) > MAX_PNG_BYTES:
    from PIL import Image  # pylint: disable=g-import-not-at-top -- matplotlib's own dependency

    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").quantize(256).save(buffer, format="PNG", optimize=True)
    data = buffer.getvalue()
  outputs.write_bytes(path, data, overwrite=overwrite)
