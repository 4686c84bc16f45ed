"""Prepares a dataset's store once: every image as its central square, JPEG-encoded, plus pixel statistics.

The paper's first step (§2: shorter side resized to 256, the central 256x256 kept) is
deterministic, and as a float resize it costs the training stream ~3x the JPEG decode. Done once
here, the stream only decodes a 256x256 JPEG. The store (``store.py``) is a TFDS dataset of
ArrayRecord files beside the source, ``<data_dir>/<dataset>_<resize_size>/1.0.0``, its images kept
as their JPEG bytes for the loader to decode; the training and eval streams read it whenever
``config.input.use_store`` is set and it is complete.

* Source: the configured TFDS dataset (``imagenet2012``: prepared by TFDS's own builder from the
  ILSVRC-2012 tars in ``manual_dir`` first, if it is not yet).
* Squares: ``images.central_square`` (the same function the stream uses without a store: uint8,
  bilinear, antialiased) encoded as JPEG at ``--quality`` (default 90) with libjpeg-turbo.
* Work: each split in shards of ``--images_per_shard``, one shard per task, ``--workers`` processes
  (default: all cores). A shard is written to a temporary file and renamed when complete, with its
  statistics beside it, so an interrupted run resumes where it stopped.
* Statistics of the train split (``pixel_stats.npz``): the 256x256x3 mean image (cuda-convnet2's and
  Caffe's mean), the per-channel mean, and the RGB covariance's eigenvalues and eigenvectors (the PCA
  colour noise's basis). Written last: a store without them is incomplete.

  python -m alexnet_jax.data.prepare_store --config=experiments/imagenet2012.py \
      --config.data_dir=/data/tfds --config.manual_dir=/data/imagenet
"""

from __future__ import annotations

import io
import math
import multiprocessing
import os
import resource
import sys
import time

import numpy as np
import tensorflow_datasets as tfds
from absl import app, flags, logging

from alexnet_jax import errors, utils
from alexnet_jax.data import images, store

SKIPPED_SPLITS = ("test",)  # ImageNet's test split has no labels


def prepare(
  config,
  *,
  workers: int | None = None,
  quality: int = 90,
  images_per_shard: int = 1024,
  progress: bool = True,
) -> str:
  """Writes (or completes) the store of ``config.dataset`` at ``config.input.resize_size``; returns its path."""
  from alexnet_jax.data import datasets  # TFDS builders: imported here, so workers start lighter

  source_config = config.copy_and_resolve_references()
  source_config.input.use_store = False
  source = datasets.prepared_builder(source_config)
  size = config.input.resize_size
  path = store.directory(source.data_dir_root, config.dataset, size)
  if store.is_prepared(path):
    logging.info("The store %s is already complete", path)
    return path
  os.makedirs(os.path.join(path, "shard_stats"), exist_ok=True)
  tasks = _tasks(source, path, size=size, quality=quality, images_per_shard=images_per_shard)
  _run(tasks, workers or os.cpu_count() or 1, progress=progress)
  _finish(source, path, tasks, size)
  return path


def _tasks(source, path: str, *, size: int, quality: int, images_per_shard: int) -> list[dict]:
  """One task per output shard of every split (done ones included: they are skipped when run)."""
  tasks = []
  for split, info in sorted(source.info.splits.items()):
    if split in SKIPPED_SPLITS:
      continue
    num_shards = max(1, math.ceil(info.num_examples / images_per_shard))
    for index in range(num_shards):
      tasks.append(
        {
          "source_dir": os.fspath(source.data_dir),
          "split": split,
          "index": index,
          "num_shards": num_shards,
          "examples": _even_share(info.num_examples, num_shards, index),
          "start": index * (info.num_examples // num_shards) + min(index, info.num_examples % num_shards),
          "record_path": os.path.join(
            path, f"{os.path.basename(os.path.dirname(path))}-{split}.array_record-{index:05d}-of-{num_shards:05d}"
          ),
          "stats_path": os.path.join(path, "shard_stats", f"{split}-{index:05d}.npz"),
          "size": size,
          "quality": quality,
          "with_stats": split == "train",
        }
      )
  return tasks


def _even_share(total: int, parts: int, index: int) -> int:
  """Examples in ``tfds.even_splits(split, parts)[index]`` (the first ones get one more)."""
  return total // parts + (index < total % parts)


def _is_done(task: dict) -> bool:
  return os.path.isfile(task["record_path"]) and os.path.isfile(task["stats_path"])


def _run(tasks: list[dict], workers: int, *, progress: bool) -> None:
  """Writes the missing shards on ``workers`` processes, with a progress bar and ETA (in images)."""
  import tqdm  # pylint: disable=g-import-not-at-top

  todo = [task for task in tasks if not _is_done(task)]
  total = sum(task["examples"] for task in tasks)
  done = total - sum(task["examples"] for task in todo)
  logging.info(
    "Preparing %d of %d shards (%d images left) on %d processes", len(todo), len(tasks), total - done, workers
  )
  bar = tqdm.tqdm(total=total, initial=done, unit="img", disable=not progress, file=sys.stderr, smoothing=0.05)
  with bar:
    if workers == 1 or len(todo) <= 1:
      for task in todo:
        bar.update(_write_shard(task))
      return
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads of the parent's
    with context.Pool(min(workers, len(todo))) as pool:
      for count in pool.imap_unordered(_write_shard, todo):
        bar.update(count)


def _write_shard(task: dict) -> int:
  """Writes one shard of central squares and its statistics; returns its number of images."""
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top

  source_builder = tfds.builder_from_directory(task["source_dir"])
  features = store_features(source_builder, task["size"])
  source = source_builder.as_data_source(split=task["split"], decoders={"image": tfds.decode.SkipDecoding()})
  size = task["size"]
  image_sum = np.zeros((size, size, 3), np.float64)
  rgb_sum, rgb_outer, count = np.zeros(3), np.zeros((3, 3)), 0
  tmp = f"{task['record_path']}.tmp"
  writer = array_record_module.ArrayRecordWriter(tmp, "group_size:1")
  try:
    for index in range(task["start"], task["start"] + task["examples"]):
      example = source[index]
      square = images.central_square(images.decode(example["image"], 3), size)
      record = {"image": io.BytesIO(images.encode_jpeg(square, task["quality"])), "label": int(example["label"])}
      if "file_name" in features:
        record["file_name"] = example["file_name"]
      writer.write(features.serialize_example(record))
      if task["with_stats"]:
        image_sum += square
        pixels = square.reshape(-1, 3).astype(np.float64)
        rgb_sum += pixels.sum(axis=0)
        rgb_outer += pixels.T @ pixels
      count += 1
  finally:
    writer.close()
  stats = io.BytesIO()
  np.savez(stats, count=count, image_sum=image_sum, rgb_sum=rgb_sum, rgb_outer=rgb_outer)
  utils.write_bytes_atomically(task["stats_path"], stats.getvalue())
  os.replace(tmp, task["record_path"])
  return count


def store_features(source, size: int) -> tfds.features.FeaturesDict:
  """The store's features: the source's, with the image a fixed ``size`` x ``size`` x 3 JPEG."""
  features = {
    "image": tfds.features.Image(shape=(size, size, 3), encoding_format="jpeg"),
    "label": tfds.features.ClassLabel(names=source.info.features["label"].names),
  }
  if "file_name" in source.info.features:
    features["file_name"] = tfds.features.Text()
  return tfds.features.FeaturesDict(features)


def pixel_stats(shard_stats: list[dict], size: int) -> dict[str, np.ndarray]:
  """The train split's statistics (``store.STATS_KEYS``) from the shards' sums, for [0, 1] pixels."""
  count = sum(int(s["count"]) for s in shard_stats)
  if count == 0:
    raise ValueError("the train split is empty: no pixel statistics")
  pixels = count * size * size
  mean = sum(s["rgb_sum"] for s in shard_stats) / pixels
  covariance = sum(s["rgb_outer"] for s in shard_stats) / pixels - np.outer(mean, mean)
  eigenvalues, eigenvectors = np.linalg.eigh(covariance / 255**2)
  order = np.argsort(eigenvalues)[::-1]  # largest first, as the paper's p1, p2, p3
  return {
    "mean_image": (sum(s["image_sum"] for s in shard_stats) / count / 255).astype(np.float32),
    "channel_mean": (mean / 255).astype(np.float32),
    "eigenvalues": eigenvalues[order],
    "eigenvectors": eigenvectors[:, order],
    "count": np.int64(count),
  }


def _finish(source, path: str, tasks: list[dict], size: int) -> None:
  """TFDS metadata from the shards' lengths, then the train statistics (the mark of a complete store)."""
  shard_stats = {}
  for task in tasks:
    with np.load(task["stats_path"]) as stats:
      shard_stats.setdefault(task["split"], []).append({key: stats[key] for key in stats.files})
  if "train" not in shard_stats:
    raise ValueError(f"{source.name} has no train split: the store needs one for its pixel statistics")
  split_infos = []
  for split in shard_stats:
    lengths = [int(s["count"]) for s in shard_stats[split]]
    num_bytes = sum(os.path.getsize(t["record_path"]) for t in tasks if t["split"] == split)
    split_infos.append(tfds.core.SplitInfo(name=split, shard_lengths=lengths, num_bytes=num_bytes))
  tfds.folder_dataset.write_metadata(
    data_dir=path,
    features=store_features(source, size),
    split_infos=split_infos,
    check_data=False,
    description=f"{source.name} as central {size}x{size} squares (alexnet_jax.data.prepare_store)",
  )
  stats = io.BytesIO()
  np.savez(stats, **pixel_stats(shard_stats["train"], size))
  utils.write_bytes_atomically(os.path.join(path, store.STATS_FILE), stats.getvalue())


def main(argv):
  del argv
  from alexnet_jax.config import validation  # pylint: disable=g-import-not-at-top

  start = time.perf_counter()
  try:
    validation.validate(flags.FLAGS.config, device_count=1)  # the data fields; devices play no part here
    path = prepare(
      flags.FLAGS.config,
      workers=flags.FLAGS.workers,
      quality=flags.FLAGS.quality,
      images_per_shard=flags.FLAGS.images_per_shard,
    )
  except errors.UserError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
  builder = store.load(path)
  splits = {name: split.num_examples for name, split in builder.info.splits.items()}
  cpu = sum(
    getattr(resource.getrusage(who), field)
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    for field in ("ru_utime", "ru_stime")
  )
  images = sum(splits.values())
  print(
    f"store ready in {path}: {splits} ({time.perf_counter() - start:.1f} s, {1e3 * cpu / images:.1f} CPU-ms per image"
    " over all processes, start-up included)"
  )


if __name__ == "__main__":
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  # Defined here, not at import, so importing this module adds no flags to other commands.
  config_flags.DEFINE_config_file("config", "experiments/imagenet2012.py", lock_config=True)
  flags.DEFINE_integer("workers", None, "Processes (default: all cores).")
  flags.DEFINE_integer("quality", 90, "JPEG quality of the stored squares.")
  flags.DEFINE_integer("images_per_shard", 1024, "Images per output shard (and per task).")
  from alexnet_jax.config import flag_errors  # pylint: disable=g-import-not-at-top

  app.run(main, flags_parser=flag_errors.parse_flags)
