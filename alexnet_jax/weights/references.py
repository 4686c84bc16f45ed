"""The two reference AlexNets whose trained weights import: the file's layer names, the net as this
model's options, and the reference's own test preprocessing, each with its source.

* BVLC's ``bvlc_alexnet.caffemodel`` (github.com/BVLC/caffe, ``models/bvlc_alexnet``): the paper's
  net as Caffe trained it -- the ``:caffe`` recipe of ``experiments/imagenet2012.py`` (two towers as
  ``group: 2``, LRN k=1 across the group boundary). Its test view (``train_val.prototxt``,
  ``create_imagenet.sh``): the image warped to 256x256, the centre 227 crop, 0-255 BGR pixels minus
  the mean image (``ilsvrc_2012_mean.binaryproto``) or, without it, the mean pixel (104, 117, 123)
  BGR of Caffe's classification example. Its conv1 reads BGR; the import reverses conv1's input
  channels so that the run reads RGB like every other run (and its Figure 3 shows true colours).
* torchvision's ``alexnet-owt-7be5be79.pth`` (``torchvision.models.alexnet``): the 2014 "one weird
  trick" net, 64-192-384-256-256, conv1 padding 2, no LRN, an adaptive 6x6 average pool, one tower.
  Its test view (``AlexNet_Weights.IMAGENET1K_V1.transforms()``): the shorter side resized to 256
  (PIL bilinear, antialiased), the centre 224 crop, [0, 1] RGB standardised with ImageNet's mean
  (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) -- ``standardize`` with ImageNet's statistics.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from alexnet_jax import flag_errors

CONFIG_FILE = os.path.join(flag_errors.REPO, "experiments", "imagenet2012.py")
CAFFE_MEAN_PIXEL_RGB = (123.0, 117.0, 104.0)  # Caffe's classification example: (104, 117, 123) in BGR


@dataclasses.dataclass(frozen=True)
class Reference:
  """One reference net: how its file names the layers, the config it is, and where it came from."""

  name: str
  layer_names: tuple[str, ...]  # the file's names of conv1, ..., conv5, fc6, fc7, fc8
  recipe: str  # the variant of experiments/imagenet2012.py it starts from ("" for the paper's)
  model: dict[str, Any]  # model options that differ from the recipe's
  input: dict[str, Any]  # config.input: the reference's test preprocessing
  bgr: bool  # the file's conv1 reads BGR
  published: str  # its accuracy under its own protocol, and the source


BVLC = Reference(
  name="BVLC bvlc_alexnet (Caffe)",
  layer_names=("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"),
  recipe="caffe",
  model={},
  input={
    "resize": "warp",
    "resize_size": 256,
    "crop_size": 227,
    "eval_crops": "center",
    "normalization": "subtract_mean",
    "mean": "channel",
    "mean_pixel": CAFFE_MEAN_PIXEL_RGB,
  },
  bgr=True,
  published="57.1 % top-1, 80.2 % top-5, centre crop (BVLC/caffe models/bvlc_alexnet/readme.md)",
)
TORCHVISION = Reference(
  name="torchvision alexnet",
  layer_names=tuple(f"features.{i}" for i in (0, 3, 6, 8, 10)) + tuple(f"classifier.{i}" for i in (1, 4, 6)),
  recipe="",
  model={
    "towers": 1,
    "channels": (64, 192, 384, 256, 256),
    "conv1_padding": 2,
    "lrn": False,
    "adaptive_pool": 6,
  },
  input={
    "resize": "shorter_side",
    "resize_size": 256,
    "crop_size": 224,
    "eval_crops": "center",
    "normalization": "standardize",
    "mean": "channel",
    "mean_pixel": (),
  },
  bgr=False,
  published="56.522 % top-1, 79.066 % top-5 (torchvision's AlexNet_Weights.IMAGENET1K_V1 metadata)",
)


def config(reference: Reference, num_classes: int, *, mean_image_file: str = ""):
  """The run's config: the recipe's, with the reference's net and test preprocessing; with
  ``mean_image_file`` (a file in the run's directory) the mean image instead of a mean pixel."""
  run_config = flag_errors.load_config_file(f"{CONFIG_FILE}:{reference.recipe}" if reference.recipe else CONFIG_FILE)
  run_config.model.update(reference.model)
  run_config.model.num_classes = num_classes
  run_config.input.update(reference.input)
  run_config.input.random_crop = False
  run_config.input.random_flip = False
  run_config.input.pca_noise_std = 0.0
  if mean_image_file:
    run_config.input.mean = "image"
    run_config.input.mean_image_file = mean_image_file
  return run_config
