"""Fake ILSVRC-2012 tars in the real layout, for ``prepare_store``'s tar reader.

``ILSVRC2012_img_train.tar`` holds one tar per synset (``n01440764.tar``) of ``<synset>_<n>.JPEG``
files; ``ILSVRC2012_img_val.tar`` holds ``ILSVRC2012_val_<8 digits>.JPEG`` files, labelled by TFDS's
``validation_labels.txt`` (line i labels the i-th name in sorted order). As in the real data, the
images vary in size and aspect ratio, one is greyscale, one CMYK, one a PNG named .JPEG; and (unlike
the real data, by default) one is a truncated JPEG that no decoder reads.

Run as a script, it writes natural-sized tars for timing ``prepare_store`` (docs/imagenet.md):

  python -m tests.support.fake_ilsvrc /tmp/ilsvrc --synsets=8 --images_per_synset=375 --num_validation=1000
"""

import argparse
import io
import os
import tarfile

import numpy as np
from PIL import Image

SYNSETS = ("n01440764", "n01443537", "n01484850", "n01739381")  # labels 0, 1, 2 and 59 of TFDS's 1000
IMAGES_PER_SYNSET = 5
NUM_VALIDATION = 5
# The synsets of the first five validation files (TFDS's validation_labels.txt; val_00000001 is a sea snake).
VALIDATION_SYNSETS = ("n01751748", "n09193705", "n02105855", "n04263257", "n03125729")
CMYK_NAME = "n01739381_0.JPEG"
GREY_NAME = "n01443537_2.JPEG"
PNG_NAME = "n01484850_3.JPEG"  # as n02105855_2933.JPEG in the real train tar
CORRUPT_NAME = "n01440764_4.JPEG"
SIZES = ((60, 90), (120, 50), (80, 80), (40, 130), (100, 70))  # (height, width): up- and down-scaled


def jpeg(rng, size, mode="RGB", image_format="JPEG") -> bytes:
  """A smooth random colour field of ``size`` (height, width), in ``mode``, encoded as ``image_format``."""
  height, width = size
  pixels = rng.integers(0, 256, (height // 5 + 1, width // 5 + 1, 3), np.uint8)
  image = Image.fromarray(pixels).resize((width, height), Image.BILINEAR)
  if mode != "RGB":
    image = image.convert(mode)
  encoded = io.BytesIO()
  image.save(encoded, format=image_format, quality=90)
  return encoded.getvalue()


def special_image(rng, name: str, size) -> bytes:
  """The fixture's image for ``name``: CMYK, grey, PNG, truncated, or a plain RGB JPEG."""
  if name == CMYK_NAME:
    return jpeg(rng, size, "CMYK")
  if name == GREY_NAME:
    return jpeg(rng, size, "L")
  if name == PNG_NAME:
    return jpeg(rng, size, image_format="PNG")
  if name == CORRUPT_NAME:
    data = jpeg(rng, size)
    return data[: len(data) // 3]
  return jpeg(rng, size)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
  info = tarfile.TarInfo(name)
  info.size = len(data)
  tar.addfile(info, io.BytesIO(data))


def write_tars(
  manual_dir: str,
  seed: int = 0,
  *,
  corrupt: bool = True,
  synsets=SYNSETS,
  images_per_synset: int = IMAGES_PER_SYNSET,
  num_validation: int = NUM_VALIDATION,
  make_image=None,
) -> dict[str, bytes]:
  """Writes both tars into ``manual_dir``; returns every file's bytes by name (train and validation).
  ``make_image(rng, name, size)`` makes each image (default :func:`special_image`); without
  ``corrupt`` the truncated JPEG is a plain one."""
  rng = np.random.default_rng(seed)
  make_image = make_image or special_image
  os.makedirs(manual_dir, exist_ok=True)
  files = {}
  with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_train.tar"), "w") as train:
    for synset in synsets:
      inner = io.BytesIO()
      with tarfile.open(fileobj=inner, mode="w") as synset_tar:
        for index in range(images_per_synset):
          name = f"{synset}_{index}.JPEG"
          size = SIZES[index % len(SIZES)]
          files[name] = make_image(rng, name, size) if corrupt or name != CORRUPT_NAME else jpeg(rng, size)
          _add(synset_tar, name, files[name])
      _add(train, f"{synset}.tar", inner.getvalue())
  with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_val.tar"), "w") as val:
    for index in range(num_validation):
      name = f"ILSVRC2012_val_{index + 1:08d}.JPEG"
      files[name] = make_image(rng, name, SIZES[-1 - index % len(SIZES)])
      _add(val, name, files[name])
  return files


def main() -> None:
  """Natural-sized tars (JPEGs of 333-500 px a side, ~75 KB, as ``benchmark_input --synthetic``'s)."""
  from alexnet_jax.data import ilsvrc_tars
  from alexnet_jax.yardsticks import synthetic_images

  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("manual_dir")
  parser.add_argument("--synsets", type=int, default=8)
  parser.add_argument("--images_per_synset", type=int, default=375)
  parser.add_argument("--num_validation", type=int, default=1000)
  args = parser.parse_args()
  write_tars(
    args.manual_dir,
    synsets=ilsvrc_tars.label_names()[: args.synsets],
    images_per_synset=args.images_per_synset,
    num_validation=args.num_validation,
    make_image=lambda rng, name, size: synthetic_images.synthetic_jpeg(rng),
  )


if __name__ == "__main__":
  main()
