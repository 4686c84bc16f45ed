"""A small synthetic stand-in for TFDS's ``imagenet2012``, for timing the ImageNet input path offline.

:class:`SyntheticImagenet` is TFDS's own ``imagenet2012`` builder (catalog name, version, features)
whose examples are generated here: natural-sized JPEGs (each side 333-500 px, quality 90, ~75 KB,
as the real images) of smooth colour fields with pixel noise, random labels of the 1000 classes.
Once prepared in a directory, ``tfds.builder("imagenet2012", data_dir=...)`` reads it like the real
dataset, so the store preparation and the training stream run through their real code.
"""

from __future__ import annotations

import io
import os

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from PIL import Image

SIDES = (333, 500)  # inclusive range of each image's height and width
QUALITY = 90
NOISE_STD = 12.0  # grey levels: sets the JPEG size (~75 KB at these sides)


def synthetic_jpeg(rng: np.random.Generator) -> bytes:
  """One JPEG of a random smooth colour field plus noise, each side in :data:`SIDES`."""
  height, width = (int(x) for x in rng.integers(SIDES[0], SIDES[1] + 1, 2))
  coarse = (rng.random((height // 24 + 2, width // 24 + 2, 3)) * 255).astype(np.uint8)
  image = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), np.float32)
  image = np.clip(image + rng.normal(0.0, NOISE_STD, image.shape), 0, 255).astype(np.uint8)
  encoded = io.BytesIO()
  Image.fromarray(image).save(encoded, format="JPEG", quality=QUALITY)
  return encoded.getvalue()


class SyntheticImagenet(tfds.builder_cls("imagenet2012"), skip_registration=True):
  """TFDS's ``imagenet2012`` builder with generated examples instead of the ILSVRC-2012 tars."""

  name = "imagenet2012"  # the catalog name, so tfds.builder("imagenet2012") finds the result

  def __init__(self, *, num_train: int, num_validation: int, **kwargs):
    self._counts = {"train": num_train, "validation": num_validation}
    super().__init__(**kwargs)

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {split: self._generate_examples(split) for split in self._counts}

  def _generate_examples(self, split):
    rng = np.random.default_rng(list(self._counts).index(split))
    for index in range(self._counts[split]):
      name = f"synthetic_{split}_{index:06d}.JPEG"
      image = io.BytesIO(synthetic_jpeg(rng))  # encoded bytes: TFDS needs no TensorFlow to store them
      yield name, {"image": image, "label": int(rng.integers(1000)), "file_name": name}


def prepare(data_dir: str, *, num_train: int, num_validation: int) -> tfds.core.DatasetBuilder:
  """The synthetic ``imagenet2012`` in ``data_dir``, generated unless it is already there with these sizes."""
  data_dir = os.path.expanduser(data_dir)
  builder = tfds.builder("imagenet2012", data_dir=data_dir)
  if builder.is_prepared():
    counts = {name: split.num_examples for name, split in builder.info.splits.items()}
    if counts == {"train": num_train, "validation": num_validation}:
      return builder
    raise ValueError(f"{builder.data_dir} holds another synthetic imagenet2012 ({counts}); use another --cache_dir")
  logging.info("Generating %d + %d synthetic ImageNet JPEGs in %s", num_train, num_validation, data_dir)
  SyntheticImagenet(
    num_train=num_train, num_validation=num_validation, data_dir=data_dir, file_format="array_record"
  ).download_and_prepare()
  return tfds.builder("imagenet2012", data_dir=data_dir)
