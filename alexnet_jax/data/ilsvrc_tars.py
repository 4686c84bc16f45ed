"""The ILSVRC-2012 tars as downloaded, read without TensorFlow: where each image lies, and its label.

``ILSVRC2012_img_train.tar`` holds one uncompressed tar per class (``n01440764.tar``, its synset) of
that class's JPEGs; ``ILSVRC2012_img_val.tar`` holds the 50,000 validation JPEGs
(``ILSVRC2012_val_00000001.JPEG`` ...). Neither is extracted: :func:`index` reads a tar's headers
once and keeps each member's byte offset, so a worker process reads any member with one seek.

The labels are TFDS's (so a store agrees with TFDS's own ``imagenet2012``): the class order is its
``labels.txt`` (sorted synsets), and line i of its ``validation_labels.txt`` is the synset of the
i-th validation file in sorted order. Both ship inside the ``tensorflow_datasets`` package and are
read as package data; nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import io
import os
import tarfile
from collections.abc import Iterator

from alexnet_jax import errors

TRAIN_TAR = "ILSVRC2012_img_train.tar"
VALIDATION_TAR = "ILSVRC2012_img_val.tar"
SPLIT_TARS = {"train": TRAIN_TAR, "validation": VALIDATION_TAR}
# The two files inside the tensorflow_datasets package: the newer layout first, then the older one.
LABEL_FILES = ("datasets/imagenet2012/labels.txt", "image_classification/imagenet2012_labels.txt")
VALIDATION_LABEL_FILES = (
  "datasets/imagenet2012/validation_labels.txt",
  "image_classification/imagenet2012_validation_labels.txt",
)


class TarError(errors.UserError, OSError):
  """A tar that is missing, truncated or not in the ILSVRC-2012 layout; the message names it."""


@dataclasses.dataclass(frozen=True)
class Member:
  """One file inside a tar: its name and where its bytes lie in the tar file."""

  name: str
  offset: int
  size: int


def tar_paths(manual_dir: str) -> dict[str, str]:
  """{split: path} of the two tars in ``manual_dir``, for those that are there."""
  paths = {split: os.path.join(manual_dir, name) for split, name in SPLIT_TARS.items()}
  return {split: path for split, path in paths.items() if os.path.isfile(path)}


def index(path: str) -> list[Member]:
  """The regular files of the tar at ``path``, in tar order (headers only; data is skipped)."""
  try:
    with tarfile.open(path, mode="r:") as tar:
      return [Member(m.name, m.offset_data, m.size) for m in tar if m.isfile()]
  except (tarfile.TarError, OSError, EOFError) as error:
    raise TarError(f"{path} cannot be read as a tar ({error}): is the download complete? Download it again") from error


def read(path: str, member: Member) -> bytes:
  """The bytes of ``member`` of the tar at ``path``."""
  with open(path, "rb") as f:
    f.seek(member.offset)
    data = f.read(member.size)
  if len(data) != member.size:
    raise TarError(f"{path} ends inside {member.name}: the tar is truncated; download it again")
  return data


def class_images(path: str, class_tar: Member) -> Iterator[tuple[str, bytes]]:
  """(file name, bytes) of every image in one class's tar inside the train tar, in tar order."""
  where = f"{os.path.basename(path)}: {class_tar.name}"
  try:
    with tarfile.open(fileobj=io.BytesIO(read(path, class_tar)), mode="r:") as tar:
      for member in tar:
        if member.isfile():
          yield os.path.basename(member.name), tar.extractfile(member).read()
  except (tarfile.TarError, EOFError) as error:
    raise TarError(f"{where} cannot be read as a tar ({error}): download {TRAIN_TAR} again") from error


def synset(class_tar: Member) -> str:
  """The synset a class tar holds (``n01440764.tar`` -> ``n01440764``)."""
  return os.path.basename(class_tar.name).removesuffix(".tar")


def label_names() -> list[str]:
  """The 1000 synsets in TFDS's class order (label i is the i-th)."""
  return _package_text(LABEL_FILES).split()


def validation_synsets(members: list[Member]) -> dict[str, str]:
  """{validation file name: synset}: TFDS's list labels the files in sorted order."""
  synsets = _package_text(VALIDATION_LABEL_FILES).split()
  return dict(zip(sorted(m.name for m in members), synsets))


def _package_text(candidates: tuple[str, ...]) -> str:
  """The first of ``candidates`` (paths inside the tensorflow_datasets package) that exists."""
  package = importlib.resources.files("tensorflow_datasets")
  for relative in candidates:
    resource = package.joinpath(relative)
    if resource.is_file():
      return resource.read_text()
  raise TarError(f"the installed tensorflow_datasets ships none of {candidates}: pip install tensorflow-datasets")
