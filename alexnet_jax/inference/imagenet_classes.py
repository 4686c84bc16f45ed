"""ImageNet's 1,000 class names, in the order of its labels (sorted WordNet ids: TFDS's imagenet2012,
BVLC's and torchvision's outputs alike), from ``imagenet_classes.tsv`` beside this module.

TFDS names ImageNet's classes only by WordNet id ("n02123045"); a run on ImageNet, trained or imported,
reports these names ("tabby") instead.
"""

from __future__ import annotations

import functools
import os

TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_classes.tsv")
DATASET = "imagenet2012"


@functools.cache
def wnids_and_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
  """(WordNet ids, names), index = label."""
  with open(TABLE, encoding="utf-8") as f:
    rows = [line.rstrip("\n").split("\t") for line in f if not line.startswith("#")]
  return tuple(wnid for wnid, _ in rows), tuple(name for _, name in rows)


def names_for(dataset: str, num_classes: int) -> tuple[str, ...] | None:
  """The class names of an ImageNet run of all 1,000 classes; None for any other run."""
  names = wnids_and_names()[1]
  return names if dataset == DATASET and num_classes == len(names) else None
