"""Fake ILSVRC-2012 tars in the real layout, for TFDS's own ``imagenet2012`` builder.

``ILSVRC2012_img_train.tar`` holds one tar per synset (``n01440764.tar``) of ``<synset>_<n>.JPEG``
files; ``ILSVRC2012_img_val.tar`` holds ``ILSVRC2012_val_<8 digits>.JPEG`` files, whose labels
TFDS takes from its own ``validation_labels.txt`` (line i labels the i-th name in sorted order).
As in the real data, the images vary in size and aspect ratio, one is greyscale and one is CMYK
(named as one of the 22 CMYK files TFDS converts).
"""

import io
import os
import tarfile

import numpy as np
from PIL import Image

SYNSETS = ("n01440764", "n01443537", "n01484850", "n01739381")
IMAGES_PER_SYNSET = 5
NUM_VALIDATION = 5
CMYK_NAME = "n01739381_1309.JPEG"  # in TFDS's CMYK_IMAGES list
GREY_NAME = "n01443537_2.JPEG"
SIZES = ((60, 90), (120, 50), (80, 80), (40, 130), (100, 70))  # (height, width): up- and down-scaled


def jpeg(rng, size, mode="RGB") -> bytes:
  height, width = size
  pixels = rng.integers(0, 256, (height // 5 + 1, width // 5 + 1, 3), np.uint8)
  image = Image.fromarray(pixels).resize((width, height), Image.BILINEAR)
  if mode != "RGB":
    image = image.convert(mode)
  encoded = io.BytesIO()
  image.save(encoded, format="JPEG", quality=90)
  return encoded.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
  info = tarfile.TarInfo(name)
  info.size = len(data)
  tar.addfile(info, io.BytesIO(data))


def write_tars(manual_dir: str, seed: int = 0) -> dict[str, str]:
  """Writes both tars into ``manual_dir``; returns each train file name's synset."""
  rng = np.random.default_rng(seed)
  os.makedirs(manual_dir, exist_ok=True)
  labels = {}
  with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_train.tar"), "w") as train:
    for synset in SYNSETS:
      inner = io.BytesIO()
      with tarfile.open(fileobj=inner, mode="w") as synset_tar:
        for index in range(IMAGES_PER_SYNSET):
          name = f"{synset}_{index}.JPEG"
          if synset == CMYK_NAME.split("_")[0] and index == 0:
            name = CMYK_NAME
          mode = "CMYK" if name == CMYK_NAME else "L" if name == GREY_NAME else "RGB"
          _add(synset_tar, name, jpeg(rng, SIZES[index % len(SIZES)], mode))
          labels[name] = synset
      _add(train, f"{synset}.tar", inner.getvalue())
  with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_val.tar"), "w") as val:
    for index in range(NUM_VALIDATION):
      _add(val, f"ILSVRC2012_val_{index + 1:08d}.JPEG", jpeg(rng, SIZES[-1 - index % len(SIZES)]))
  return labels
