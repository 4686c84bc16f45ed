"""What a run reports: TensorBoard events, the conv1 kernel picture, and ``summary.json``.

TensorBoard events are written with the ``tensorboard`` package's own event-file writer and summary
protos (as ``torch.utils.tensorboard`` does): scalars, PNG images, text and HParams, no TensorFlow
(not even where it is installed: :func:`tensorboard_without_tensorflow`).
Only process 0 writes; other processes get a writer that drops everything.
"""

from __future__ import annotations

import math
import sys
import time
import types
from collections.abc import Mapping
from typing import Any

import numpy as np

from alexnet_jax import utils

NO_TENSORFLOW = "tensorboard.compat.notf"  # TensorBoard's Bazel target "no_tensorflow"; the wheel lacks it


def tensorboard_without_tensorflow() -> None:
  """Makes the ``tensorboard`` package use its own TensorFlow stub even where TensorFlow is installed.

  Its file I/O (``tensorboard.compat.tf``, behind the event writer and reader) imports TensorFlow
  whenever it can -- 4 s and a gigabyte of memory -- unless :data:`NO_TENSORFLOW` is importable.
  Naming that module picks the stub: what runs where TensorFlow is not installed. Call it before
  anything of ``tensorboard`` reads or writes files."""
  sys.modules.setdefault(NO_TENSORFLOW, types.ModuleType(NO_TENSORFLOW))


class SummaryWriter:
  """Scalars, images, text and hyper-parameters for TensorBoard, in ``logdir``."""

  def __init__(self, logdir: str, *, enabled: bool = True):
    self._writer = None
    if enabled:
      from tensorboard.summary.writer import event_file_writer  # pylint: disable=g-import-not-at-top

      tensorboard_without_tensorflow()

      self._writer = event_file_writer.EventFileWriter(logdir)

  def write_summary(self, step: int, summary) -> None:
    """One ``Summary`` proto (any plugin's ``*_pb``) at ``step``."""
    if not self._writer:
      return
    from tensorboard.compat.proto import event_pb2  # pylint: disable=g-import-not-at-top

    self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    if self._writer:
      from tensorboard.plugins.scalar import summary_v2 as scalar  # pylint: disable=g-import-not-at-top

      for name, value in values.items():
        self.write_summary(step, scalar.scalar_pb(name, float(value)))

  def images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """HxWxC float images in [0, 1], stored as PNGs."""
    if self._writer:
      from tensorboard.compat.proto import summary_pb2  # pylint: disable=g-import-not-at-top

      from alexnet_jax.data import images as image_codec  # pylint: disable=g-import-not-at-top

      for name, image in images.items():
        pixels = np.clip(np.rint(np.asarray(image, np.float32) * 255), 0, 255).astype(np.uint8)
        height, width, channels = pixels.shape
        png = summary_pb2.Summary.Image(
          height=height, width=width, colorspace=channels, encoded_image_string=image_codec.encode_png(pixels)
        )
        self.write_summary(step, summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=name, image=png)]))

  def text(self, step: int, name: str, text: str) -> None:
    """A text event (TensorBoard's Text tab), e.g. each learning-rate drop of the plateau rule."""
    if self._writer:
      from tensorboard.plugins.text import summary_v2 as text_summary  # pylint: disable=g-import-not-at-top

      self.write_summary(step, text_summary.text_pb(name, text))

  def config(self, config_dict: Mapping[str, Any], text: str) -> None:
    """The run's config: as hyper-parameters (flattened) and as a text panel."""
    if self._writer:
      from tensorboard.plugins.hparams import summary_v2 as hparams  # pylint: disable=g-import-not-at-top
      from tensorboard.plugins.text import summary_v2 as text_summary  # pylint: disable=g-import-not-at-top

      self.write_summary(0, hparams.hparams_pb(flatten_for_hparams(config_dict)))
      self.write_summary(0, text_summary.text_pb("config", "    " + text.replace("\n", "\n    ")))

  def flush(self) -> None:
    if self._writer:
      self._writer.flush()

  def close(self) -> None:
    if self._writer:
      self._writer.close()


def flatten_for_hparams(tree: Mapping[str, Any]) -> dict[str, Any]:
  """Nested dict -> {"a.b": value} with values TensorBoard's hparams accept (bool/int/float/str)."""
  return {
    name: value if isinstance(value, (bool, int, float, str)) else str(value)
    for name, value in utils.flatten(tree).items()
  }


def kernel_grid(kernels: np.ndarray, *, columns: int = 16, pad: int = 1, scale: int = 3) -> np.ndarray:
  """Conv kernels (kh, kw, in, n) as one RGB image, the paper's Figure 3 layout.

  Each kernel is stretched to [0, 1] on its own (as the figure does) and placed on a grid of
  ``columns`` per row with a ``pad``-pixel white border; ``scale`` enlarges each pixel.
  """
  kh, kw, channels, count = kernels.shape
  kernels = np.asarray(kernels, np.float32).transpose(3, 0, 1, 2)
  if channels == 1:
    kernels = np.repeat(kernels, 3, axis=-1)
  low = kernels.min(axis=(1, 2, 3), keepdims=True)
  high = kernels.max(axis=(1, 2, 3), keepdims=True)
  kernels = (kernels - low) / np.maximum(high - low, 1e-12)
  columns = min(columns, count)
  rows = math.ceil(count / columns)
  grid = np.ones((rows * (kh + pad) + pad, columns * (kw + pad) + pad, 3), np.float32)
  for index, kernel in enumerate(kernels):
    top = pad + (index // columns) * (kh + pad)
    left = pad + (index % columns) * (kw + pad)
    grid[top : top + kh, left : left + kw] = kernel[..., :3]
  return grid.repeat(scale, axis=0).repeat(scale, axis=1)


def conv1_kernel_images(conv1_kernel: np.ndarray) -> dict[str, np.ndarray]:
  """One picture per tower from the stacked conv1 kernel (towers, kh, kw, in, n_per_tower)."""
  return {f"conv1_kernels/tower{t + 1}": kernel_grid(np.asarray(k)) for t, k in enumerate(conv1_kernel)}
