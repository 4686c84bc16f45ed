"""The ``image_folder`` dataset: the user's own pictures, one sub-folder per class, as a prepared store.

``config.image_folder`` names a folder ``FOLDER/<class>/<picture>``; the class names are the
sub-folders' names, sorted (label i is the i-th), and a picture is any file ``images.decode`` reads
(JPEG, PNG, GIF, BMP, WebP, TIFF, ...). Hidden files and folders (``.DS_Store``, ``.git``) are left
out. ``config.holdout_fraction`` of the pictures form the ``validation`` split, the rest ``train``: a
picture is held out when the first 8 bytes of the sha256 of ``<class>/<file name>``, read as a
fraction of 2**64, fall below it -- deterministic without a seed, and a picture keeps its split when
others are added or removed.

``prepare_store`` writes the folder into a store like ImageNet's (``<data_dir>/image_folder_<size>``:
central squares as JPEG, the train split's pixel statistics), recording the folder's real path and a
digest of its file list (names, sizes, modification times) in ``store_info.json``: a store made from
another folder, or from this one before its pictures changed, is refused, never read for it. The
registry entry's facts (pixel mean and std, train size) are that store's (:func:`facts`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np

from alexnet_jax import errors
from alexnet_jax.data import data_dirs, registry, store

NAME = "image_folder"
SPLITS = ("train", "validation")
_HASH_BYTES = 8  # of a picture's sha256, read as a fraction of 2**64


class FolderError(errors.UserError, ValueError):
  """A folder that cannot be a dataset (missing, no class sub-folders, an empty class); names it."""


@dataclasses.dataclass(frozen=True)
class Folder:
  """A class folder listing: the folder's real path, its class names and each class's file names, sorted."""

  path: str
  classes: tuple[str, ...]
  files: dict[str, tuple[str, ...]]  # class -> its (non-hidden, regular) files

  def digest(self) -> str:
    """sha256 of every picture's class, name, size and modification time: changes when the pictures do."""
    digest = hashlib.sha256()
    for name in self.classes:
      for file_name in self.files[name]:
        status = os.stat(os.path.join(self.path, name, file_name))
        digest.update(f"{name}/{file_name}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def read(folder: str) -> Folder:
  """The listing of ``folder``; :class:`FolderError` naming the folder, or the class, that cannot be one."""
  path = os.path.realpath(os.path.expanduser(folder))
  if not os.path.isdir(path):
    raise FolderError(f"config.image_folder={folder} is not a folder (it must hold one sub-folder per class)")
  with os.scandir(path) as entries:
    classes = tuple(sorted(e.name for e in entries if e.is_dir() and not e.name.startswith(".")))
  if not classes:
    raise FolderError(f"config.image_folder={folder} holds no class sub-folders: put each class's pictures in one")
  files = {name: _pictures(os.path.join(path, name)) for name in classes}
  empty = [name for name in classes if not files[name]]
  if empty:
    raise FolderError(f"config.image_folder={folder}: the class folder {empty[0]!r} holds no picture")
  return Folder(path, classes, files)


def _pictures(class_dir: str) -> tuple[str, ...]:
  with os.scandir(class_dir) as entries:
    return tuple(sorted(e.name for e in entries if e.is_file() and not e.name.startswith(".")))


def class_count(folder: str) -> int:
  """How many classes ``folder`` holds (its sub-folders), for a config's ``model.num_classes``."""
  return len(read(folder).classes)


def held_out(class_name: str, file_name: str, fraction: float) -> bool:
  """Whether a picture belongs to the validation split (see the module docstring)."""
  digest = hashlib.sha256(f"{class_name}/{file_name}".encode()).digest()
  return int.from_bytes(digest[:_HASH_BYTES], "big") < fraction * 2 ** (8 * _HASH_BYTES)


def split(folder: Folder, fraction: float) -> dict[str, list[tuple[str, int]]]:
  """{split: [(picture path, label)]} of both splits; :class:`FolderError` when the holdout takes every
  picture of a class (it could not be learnt). An empty validation split is left out."""
  splits = {name: [] for name in SPLITS}
  for label, name in enumerate(folder.classes):
    for file_name in folder.files[name]:
      where = SPLITS[1] if held_out(name, file_name, fraction) else SPLITS[0]
      splits[where].append((os.path.join(folder.path, name, file_name), label))
  trained = {label for _, label in splits["train"]}
  missing = [name for label, name in enumerate(folder.classes) if label not in trained]
  if missing:
    raise FolderError(
      f"config.holdout_fraction={fraction} holds out every picture of the class {missing[0]!r} in"
      f" {folder.path}: add pictures to it or lower the fraction"
    )
  return {name: pictures for name, pictures in splits.items() if pictures}


def identity(config) -> dict:
  """What a store of ``config.image_folder`` records as made from: the folder, its pictures, the holdout."""
  folder = read(config.image_folder)
  return {"folder": folder.path, "files": folder.digest(), "holdout_fraction": float(config.holdout_fraction)}


def store_path(config) -> str:
  """Where ``config``'s folder store lives (``<data_dir>/image_folder_<resize_size>/1.0.0``)."""
  return store.directory(data_dirs.data_root(config), NAME, config.input.resize_size)


def facts(config) -> registry.Facts:
  """The registry's ``own_store.facts``: the prepared store's per-channel mean, std and train size."""
  path = store_path(config)
  if not store.is_prepared(path):
    raise data_dirs.DatasetUnavailableError(
      f"{NAME} has no prepared store in {path}: prepare it first (datasets.prepare, which every command runs)"
    )
  stats = store.read_stats(path)
  covariance = stats["eigenvectors"] @ np.diag(stats["eigenvalues"]) @ stats["eigenvectors"].T
  std = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
  return registry.Facts(
    mean=tuple(float(v) for v in stats["channel_mean"]),
    std=tuple(float(v) for v in std),
    train_examples=int(stats["count"]),
  )
