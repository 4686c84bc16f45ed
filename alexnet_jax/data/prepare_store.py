"""Prepares a dataset's store once: every image as its square, JPEG-encoded, plus pixel statistics. No TensorFlow.

The paper's first step (§2: shorter side resized to 256, the central 256x256 kept; or Caffe's warp
of the whole image, ``config.input.resize``) is deterministic, and as a float resize it costs the
training stream ~3x the JPEG decode. Done once here, the stream only decodes a 256x256 JPEG. The
store (``store.py``) is a TFDS dataset of ArrayRecord files, ``<data_dir>/<dataset>_<resize_size>/1.0.0``,
its images kept as their JPEG bytes for the loader to decode; the training and eval streams read it
whenever ``config.input.use_store`` is set and it is complete.

* Source: for ``imagenet2012``, the two ILSVRC-2012 tars in ``manual_dir`` read as they are
  (``ilsvrc_tars.py``: one train shard per class tar, the validation files in shards of
  ``--images_per_shard``); without them, a copy of ``imagenet2012`` TFDS already prepared as ArrayRecord
  in ``data_dir`` (the synthetic one of ``benchmark_input --synthetic``, or one TFDS converted earlier).
  ``image_folder``: the pictures of ``config.image_folder`` (``image_folder.py``: one sub-folder per
  class, ``config.holdout_fraction`` of them as the validation split), in shards of ``--images_per_shard``;
  the folder and a digest of its pictures are recorded, and a store made from other pictures is refused.
  Other datasets: their TFDS copy, prepared as for training.
* Squares: ``images.decode`` (CMYK, grey and PNG files named .JPEG become RGB), then
  ``images.central_square`` with ``config.input.resize`` (the function the stream uses without a
  store), encoded as JPEG at ``--quality`` (default 90) with libjpeg-turbo. An image no decoder reads
  is named (tar member and class) and, by ``--on_bad_image``, left out and listed in the store's
  ``store_info.json`` (``skip``, the default) or the end of the run (``stop``: one ``error:`` line).
* Work: one task per shard on ``--workers`` processes (default: all cores), progress and ETA on
  stderr. A shard is written to a temporary file and renamed when complete, its statistics beside
  it, so a killed run, run again, writes only the missing shards; ``store_info.json`` records the
  settings a store was begun with, and a rerun with other settings is refused, not mixed in.
* Statistics of the train split (``pixel_stats.npz``): the 256x256x3 mean image (cuda-convnet2's and
  Caffe's mean), the per-channel mean, and the RGB covariance's eigenvalues and eigenvectors (the PCA
  colour noise's basis). Written last: a store without them is incomplete.

  python -m alexnet_jax.data.prepare_store --config=experiments/imagenet2012.py \
      --config.data_dir=/data/tfds --config.manual_dir=/data/imagenet
"""

from __future__ import annotations

import dataclasses
import functools
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

from alexnet_jax import errors, rules, utils
from alexnet_jax.data import datasets, ilsvrc_tars, image_folder, images, input_options, store

SKIPPED_SPLITS = ("test",)  # ImageNet's test split has no labels
ON_BAD_IMAGE = ("skip", "stop")
PROGRESS_SECONDS = 10.0  # at most one progress line per this many seconds
TEMPORARY = ".tmp"  # suffix of a shard being written


class StoreError(errors.UserError, ValueError):
  """A store that cannot be prepared as asked (other settings than it was begun with, a bad option)."""


class BadImageError(StoreError):
  """An image no decoder reads, with ``--on_bad_image=stop``; the message names it."""


@dataclasses.dataclass(frozen=True)
class Source:
  """Where the images come from: one reader (a picklable dict) per output shard of each split."""

  kind: str  # "ilsvrc_tars", "tfds" or "image_folder": recorded, so a resumed store keeps its shards' source
  name: str
  label_names: tuple[str, ...]
  file_names: bool  # whether the examples carry their file names
  shards: dict[str, list[dict]]
  unit: str  # what a reader's "work" counts, for the progress: "bytes" (of the tars) or "images"
  every_class_trained: bool = False  # a class without a readable train image is an error (a user's folder)


def prepare(
  config,
  *,
  workers: int | None = None,
  quality: int = 90,
  images_per_shard: int = 1024,
  on_bad_image: str = "skip",
  progress: bool = True,
) -> str:
  """Writes (or completes) the store of ``config.dataset`` at ``config.input.resize_size``; returns its path.

  Every setting is checked before anything is written (:func:`check_settings`); a complete store is
  kept as it is, and asking it for other settings is refused (:func:`_check_finished`)."""
  check_settings(workers=workers, quality=quality, images_per_shard=images_per_shard, on_bad_image=on_bad_image)
  root = datasets.data_root(config)
  size, resize = config.input.resize_size, config.input.resize
  path = store.directory(root, config.dataset, size)
  made_from = image_folder.identity(config) if config.dataset == image_folder.NAME else {}
  _check_made_from(path, made_from)
  if store.is_prepared(path):
    _check_finished(path, {"resize": resize, "quality": quality, "images_per_shard": images_per_shard})
    logging.info("The store %s is already complete", path)
    return path
  source = _source(config, root, images_per_shard)
  _check_every_split_has_shards(source)
  plan = {"source": source.kind, "resize": resize, "quality": quality, "images_per_shard": images_per_shard}
  plan |= made_from
  _begin(path, plan)
  tasks = _tasks(source, path, plan, size=size, on_bad_image=on_bad_image)
  _run(tasks, workers or os.cpu_count() or 1, unit=source.unit, progress=progress)
  _finish(config.dataset, source, path, tasks, plan)
  return path


def prepare_for_run(config) -> str:
  """What ``datasets.prepare`` runs for a dataset that is its own store (the registry's ``own_store``, an
  image folder): :func:`prepare` without progress lines, the images it left out logged; the store's path."""
  path = prepare(config, progress=False)
  logging.info("%s: %s", path, skipped_summary(path))
  return path


def _check_every_split_has_shards(source: Source) -> None:
  """A store is complete only with every split its source holds: one without a shard is refused up front."""
  empty = [split for split, readers in source.shards.items() if not readers]
  if empty:
    raise StoreError(f"{source.name} gives no image of its {' and '.join(empty)} split: nothing was written")


# The command's own flags' rules. JPEG qualities are 1..100; workers None means all cores.
SETTING_RULES = (
  rules.integer("workers", 1),
  rules.integer("quality", 1, 100),
  rules.integer("images_per_shard", 1),
  rules.one_of("on_bad_image", ON_BAD_IMAGE),
)


def check_settings(**values) -> None:
  """A :class:`StoreError` naming every flag whose value breaks its rule (:data:`SETTING_RULES`)."""
  problems = [
    problem
    for rule in SETTING_RULES
    if not (rule.field == "workers" and values[rule.field] is None)
    and (problem := rule.problem(values[rule.field], prefix="--"))
  ]
  if problems:
    raise StoreError("; ".join(problems))


def _check_finished(path: str, settings: dict) -> None:
  """A complete store asked for settings other than those it was made with is refused, naming both."""
  recorded = store.read_info(path)
  made = {"resize": store.resize_method(path)} | {
    k: recorded[k] for k in ("quality", "images_per_shard") if k in recorded
  }
  differ = [key for key in made if settings[key] != made[key]]
  if differ:
    tag = "-".join(f"{made[key]}" for key in differ)
    raise StoreError(
      f"the store {path} is complete, made with {', '.join(f'{k}={made[k]!r}' for k in differ)}, not this run's "
      f"{', '.join(f'{k}={settings[k]!r}' for k in differ)}: rerun with those, or move it away "
      f"(mv {path} {path}-{tag}) and rerun to prepare one with these"
    )


def _check_made_from(path: str, made_from: dict) -> None:
  """A store (complete, or holding a finished shard) made from another folder, from this folder before
  its pictures changed, or with another holdout, is refused in one line: it is never read for these."""
  recorded = store.read_info(path)
  if not made_from or not (store.is_prepared(path) or (os.path.isdir(path) and _finished_shards(path))):
    return
  if recorded.get("folder") != made_from["folder"]:
    raise StoreError(
      f"the store {path} was made from the folder {recorded.get('folder')}, not {made_from['folder']}: give this"
      " folder its own --config.data_dir, or move that store away and rerun"
    )
  if recorded.get("files") != made_from["files"]:
    raise StoreError(
      f"the pictures in {made_from['folder']} changed since the store {path} was made from them: move it away"
      f" (mv {path} {path}-old) and rerun to prepare it again"
    )
  if recorded.get("holdout_fraction") != made_from["holdout_fraction"]:
    raise StoreError(
      f"the store {path} holds out holdout_fraction={recorded.get('holdout_fraction')}, not this run's"
      f" {made_from['holdout_fraction']}: rerun with that, or move it away (mv {path} {path}-old) and rerun"
    )


def _begin(path: str, plan: dict) -> None:
  """Creates the store's directory and records ``plan``. A store begun with another plan is refused once it
  holds a finished shard (mixing them would corrupt it); before that nothing of it is kept, so a failed
  start never blocks the corrected command. Leftovers of a killed run (shards being written) are removed."""
  info_path = os.path.join(path, store.INFO_FILE)
  if os.path.isdir(path) and os.listdir(path):
    begun = utils.read_json_object(info_path) if os.path.isfile(info_path) else {}
    if {key: begun.get(key) for key in plan} != plan and _finished_shards(path):
      raise StoreError(
        f"the unfinished store {path} was begun with other settings ({begun or 'none recorded'}) than this "
        f"run's {plan}: rerun with those, or move it away (mv {path} {path}-unfinished) to start again"
      )
    for name in os.listdir(path):
      if name.endswith(TEMPORARY):
        os.remove(os.path.join(path, name))
  os.makedirs(os.path.join(path, "shard_stats"), exist_ok=True)
  utils.write_json_atomically(info_path, plan)


def _finished_shards(path: str) -> list[str]:
  return [name for name in os.listdir(path) if ".array_record-" in name and not name.endswith(TEMPORARY)]


def _source(config, root: str, images_per_shard: int) -> Source:
  """ImageNet's tars in the manual directory, else its prepared TFDS copy; a folder's pictures; other
  datasets' TFDS copy."""
  if config.dataset == image_folder.NAME:
    return _folder_source(config, images_per_shard)
  if config.dataset != "imagenet2012":
    source_config = config.copy_and_resolve_references()
    source_config.input.use_store = False
    return _tfds_source(datasets.prepare(source_config), images_per_shard)
  manual_dir = os.path.expanduser(config.manual_dir or os.path.join(root, "downloads", "manual"))
  tars = ilsvrc_tars.tar_paths(manual_dir)
  if len(tars) == len(ilsvrc_tars.SPLIT_TARS):
    return _tar_source(tars, images_per_shard)
  builder = tfds.builder(config.dataset, data_dir=root)
  if builder.is_prepared() and builder.info.file_format == datasets.ARRAY_RECORD:
    return _tfds_source(builder, images_per_shard)
  missing = [name for split, name in ilsvrc_tars.SPLIT_TARS.items() if split not in tars]
  raise datasets.DatasetUnavailableError(
    f"imagenet2012 is not prepared in {root} and {manual_dir} lacks {' and '.join(missing)}. ImageNet must be "
    f"downloaded by hand: register at https://image-net.org/download-images, then put "
    f"{' and '.join(ilsvrc_tars.SPLIT_TARS.values())} (as downloaded, not extracted) into {manual_dir} "
    "(or point --config.manual_dir at the directory holding them) and rerun."
  )


def _tar_source(tars: dict[str, str], images_per_shard: int) -> Source:
  """One train shard per class tar; the validation files, sorted by name, in shards of ``images_per_shard``."""
  names = tuple(ilsvrc_tars.label_names())
  class_tars = [m for m in ilsvrc_tars.index(tars["train"]) if m.name.endswith(".tar")]
  unknown = sorted({ilsvrc_tars.synset(m) for m in class_tars} - set(names))
  if not class_tars or unknown:
    raise ilsvrc_tars.TarError(
      f"{tars['train']} is not ILSVRC-2012's train tar: it holds {len(class_tars)} class tars"
      + (f", of synsets TFDS's imagenet2012 does not know ({', '.join(unknown[:5])})" if unknown else "")
    )
  validation = sorted(ilsvrc_tars.index(tars["validation"]), key=lambda m: m.name)
  synsets = ilsvrc_tars.validation_synsets(validation)
  if len(synsets) < len(validation):
    raise ilsvrc_tars.TarError(f"{tars['validation']} holds {len(validation)} files, more than ILSVRC-2012's")
  train = [{"kind": "class_tar", "path": tars["train"], "member": m, "work": m.size} for m in class_tars]
  shards = [validation[start : start + images_per_shard] for start in range(0, len(validation), images_per_shard)]
  members = [
    {"kind": "members", "path": tars["validation"], "members": [(m, synsets[m.name]) for m in shard]}
    for shard in shards
  ]
  for reader in members:
    reader["work"] = sum(m.size for m, _ in reader["members"])
  return Source("ilsvrc_tars", "the ILSVRC-2012 tars", names, True, {"train": train, "validation": members}, "bytes")


def _folder_source(config, images_per_shard: int) -> Source:
  """The pictures of ``config.image_folder``, each split in shards of ``images_per_shard`` in name order."""
  folder = image_folder.read(config.image_folder)
  shards = {
    split: [
      {"kind": "files", "pictures": pictures[start : start + images_per_shard]}
      for start in range(0, len(pictures), images_per_shard)
    ]
    for split, pictures in image_folder.split(folder, config.holdout_fraction).items()
  }
  for reader in (reader for readers in shards.values() for reader in readers):
    reader["work"] = len(reader["pictures"])
  return Source(
    image_folder.NAME, f"the folder {folder.path}", folder.classes, True, shards, "images", every_class_trained=True
  )


def _tfds_source(builder, images_per_shard: int) -> Source:
  """A prepared TFDS dataset, each split in even shards of at most ``images_per_shard`` examples."""
  shards = {}
  for split, info in sorted(builder.info.splits.items()):
    if split in SKIPPED_SPLITS:
      continue
    count = max(1, math.ceil(info.num_examples / images_per_shard))
    starts = [
      index * (info.num_examples // count) + min(index, info.num_examples % count) for index in range(count + 1)
    ]
    shards[split] = [
      {"kind": "tfds", "dir": os.fspath(builder.data_dir), "split": split, "start": a, "stop": b, "work": b - a}
      for a, b in zip(starts, starts[1:])
    ]
  features = builder.info.features
  names = tuple(features["label"].names)
  return Source("tfds", f"{builder.name} in {builder.data_dir}", names, "file_name" in features, shards, "images")


def _tasks(source: Source, path: str, plan: dict, *, size: int, on_bad_image: str) -> list[dict]:
  """One task per output shard of every split (done ones included: they are skipped when run)."""
  prefix = os.path.basename(os.path.dirname(path))
  tasks = []
  for split, readers in source.shards.items():
    for index, reader in enumerate(readers):
      tasks.append(
        {
          "reader": reader,
          "record_path": os.path.join(path, f"{prefix}-{split}.array_record-{index:05d}-of-{len(readers):05d}"),
          "stats_path": os.path.join(path, "shard_stats", f"{split}-{index:05d}.npz"),
          "split": split,
          "label_names": source.label_names,
          "file_names": source.file_names,
          "size": size,
          "resize": plan["resize"],
          "quality": plan["quality"],
          "with_stats": split == "train",
          "on_bad_image": on_bad_image,
        }
      )
  return tasks


def _is_done(task: dict) -> bool:
  return os.path.isfile(task["record_path"]) and os.path.isfile(task["stats_path"])


class Progress:
  """Prints how far the work is, its images per second and the ETA, at most every ``interval`` seconds."""

  def __init__(self, total: int, done: int, unit: str, *, enabled: bool, interval: float = PROGRESS_SECONDS):
    self.total, self.done, self.unit, self.enabled, self.interval = total, done, unit, enabled, interval
    self.start = self.last = time.perf_counter()
    self.images = self.work = 0  # this run's

  def update(self, images_written: int, work: int) -> None:
    self.images += images_written
    self.work += work
    self.done += work
    if time.perf_counter() - self.last >= self.interval or self.done >= self.total:
      self.report()

  def report(self) -> None:
    self.last = time.perf_counter()
    if self.enabled:
      print(f"prepare_store: {self.line()}", file=sys.stderr, flush=True)

  def line(self) -> str:
    elapsed = max(self.last - self.start, 1e-9)
    eta = (self.total - self.done) * elapsed / self.work if self.work else float("nan")
    eta_text = utils.format_duration(eta) if math.isfinite(eta) else "unknown"
    return (
      f"{_done_of_total(self.done, self.total, self.unit)} ({self.done / self.total:.1%}), "
      f"{self.images:,} images written this run, {self.images / elapsed:,.1f} images/s, ETA {eta_text}"
    )


def _done_of_total(done: int, total: int, unit: str) -> str:
  if unit == "bytes":
    return f"{done / 1e9:,.2f} of {total / 1e9:,.2f} GB of the tars read"
  return f"{done:,} of {total:,} images read"


def _run(tasks: list[dict], workers: int, *, unit: str, progress: bool) -> None:
  """Writes the missing shards on ``workers`` processes (spawned: fresh interpreters), with progress lines."""
  todo = [task for task in tasks if not _is_done(task)]
  total = sum(task["reader"]["work"] for task in tasks)
  meter = Progress(max(total, 1), total - sum(task["reader"]["work"] for task in todo), unit, enabled=progress)
  logging.info("Preparing %d of %d shards on %d processes", len(todo), len(tasks), min(workers, len(todo)))
  if workers == 1 or len(todo) <= 1:
    for task in todo:
      meter.update(*_write_shard(task))
    return
  with multiprocessing.get_context("spawn").Pool(min(workers, len(todo))) as pool:
    for result in pool.imap_unordered(_write_shard, todo):
      meter.update(*result)


def _write_shard(task: dict) -> tuple[int, int]:
  """Writes one shard of squares and its statistics; returns (images written, the reader's work).

  A disk that fills up or cannot be written (OSError; ArrayRecord's writer reports it as a
  RuntimeError naming the file) is a :class:`StoreError` naming the shard: one line, and the shards
  finished before it stay (a rerun resumes)."""
  try:
    return _write_shard_files(task)
  except (OSError, RuntimeError) as error:
    raise StoreError(
      f"writing {task['record_path']} failed ({type(error).__name__}: {error}); the finished shards are kept: "
      "make room (or choose another --config.data_dir) and rerun the same command to resume"
    ) from None


def _write_shard_files(task: dict) -> tuple[int, int]:
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top

  features = store_features(task["label_names"], task["size"], task["file_names"])
  sums = ShardSums(task["size"], task["with_stats"])
  tmp = task["record_path"] + TEMPORARY
  writer = array_record_module.ArrayRecordWriter(tmp, "group_size:1")
  try:
    for where, file_name, data, label in _examples(task["reader"], task["label_names"]):
      square = _square(where, data, task)
      if square is None:
        sums.skipped.append(where)
        continue
      record = {"image": io.BytesIO(images.encode_jpeg(square, task["quality"])), "label": label}
      if task["file_names"]:
        record["file_name"] = file_name
      writer.write(features.serialize_example(record))
      sums.add(square, label)
  except BaseException:
    writer.close()
    os.remove(tmp)
    raise
  writer.close()
  utils.write_bytes_atomically(task["stats_path"], sums.npz())
  os.replace(tmp, task["record_path"])
  return sums.count, task["reader"]["work"]


def _square(where: str, data: bytes, task: dict) -> np.ndarray | None:
  """The image's RGB square; None for an image no decoder reads (``skip``), or a :class:`BadImageError`."""
  try:
    return images.central_square(images.decode(data, 3), task["size"], task["resize"])
  except images.ImageDecodeError as error:
    if task["on_bad_image"] == "stop":
      raise BadImageError(
        f"{where}: {error}; --on_bad_image=skip leaves such images out and lists them in the store's {store.INFO_FILE}"
      ) from None
    logging.warning("Skipping %s: %s", where, error)
    return None


def _examples(reader: dict, label_names: tuple[str, ...]):
  """(where, file name, encoded bytes, label) of each example a shard's reader holds, in order."""
  labels = {name: label for label, name in enumerate(label_names)}
  if reader["kind"] == "class_tar":
    synset = ilsvrc_tars.synset(reader["member"])
    prefix = f"{os.path.basename(reader['path'])}: {reader['member'].name}/"
    for name, data in ilsvrc_tars.class_images(reader["path"], reader["member"]):
      yield f"{prefix}{name} (class {synset})", name, data, labels[synset]
  elif reader["kind"] == "files":
    for path, label in reader["pictures"]:
      file_name = os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))  # class/picture
      with open(path, "rb") as f:
        yield f"{path} (class {label_names[label]})", file_name, f.read(), label
  elif reader["kind"] == "members":
    for member, synset in reader["members"]:
      where = f"{os.path.basename(reader['path'])}: {member.name} (class {synset})"
      yield where, member.name, ilsvrc_tars.read(reader["path"], member), labels[synset]
  else:
    split = tfds.builder_from_directory(reader["dir"]).as_data_source(
      split=reader["split"], decoders={"image": tfds.decode.SkipDecoding()}
    )
    for index in range(reader["start"], reader["stop"]):
      example = split[index]
      file_name = example.get("file_name", b"")
      label = int(example["label"])
      yield (
        f"{reader['dir']} {reader['split']}[{index}] (class {label_names[label]})",
        file_name,
        example["image"],
        label,
      )


class ShardSums:
  """What a shard adds to the train statistics (pixel sums), its images' labels, and the images it left out."""

  def __init__(self, size: int, with_stats: bool):
    self.with_stats = with_stats
    self.image_sum = np.zeros((size, size, 3), np.float64)
    self.rgb_sum, self.rgb_outer, self.count = np.zeros(3), np.zeros((3, 3)), 0
    self.skipped: list[str] = []
    self.labels: list[int] = []

  def add(self, square: np.ndarray, label: int) -> None:
    self.count += 1
    self.labels.append(label)
    if self.with_stats:
      self.image_sum += square
      pixels = square.reshape(-1, 3).astype(np.float64)
      self.rgb_sum += pixels.sum(axis=0)
      self.rgb_outer += pixels.T @ pixels

  def npz(self) -> bytes:
    """The shard's statistics file: its count and skipped images; the pixel sums of a train shard."""
    data = io.BytesIO()
    sums = {"image_sum": self.image_sum, "rgb_sum": self.rgb_sum, "rgb_outer": self.rgb_outer}
    np.savez(
      data,
      count=self.count,
      skipped=np.asarray(self.skipped, dtype=str),
      labels=np.asarray(self.labels, np.int64),
      **(sums if self.with_stats else {}),
    )
    return data.getvalue()


@functools.lru_cache(maxsize=2)
def store_features(label_names: tuple[str, ...], size: int, file_names: bool) -> tfds.features.FeaturesDict:
  """The store's features: the image a fixed ``size`` x ``size`` x 3 JPEG, the label, the file name if any."""
  features = {
    "image": tfds.features.Image(shape=(size, size, 3), encoding_format="jpeg"),
    "label": tfds.features.ClassLabel(names=list(label_names)),
  }
  if file_names:
    features["file_name"] = tfds.features.Text()
  return tfds.features.FeaturesDict(features)


def pixel_stats(shard_stats: list[dict], size: int) -> dict[str, np.ndarray]:
  """The train split's statistics (``store.STATS_KEYS``) from the shards' sums, for [0, 1] pixels."""
  count = sum(int(s["count"]) for s in shard_stats)
  if count == 0:
    raise StoreError("the train split holds no readable image: no pixel statistics")
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


def _finish(dataset: str, source: Source, path: str, tasks: list[dict], plan: dict) -> None:
  """TFDS metadata from the shards' lengths, the store's record (its settings, the images left out),
  then the train statistics (the mark of a complete store)."""
  shard_stats = {}
  for task in tasks:
    with np.load(task["stats_path"]) as stats:
      shard_stats.setdefault(task["split"], []).append({key: stats[key] for key in stats.files})
  if "train" not in shard_stats:
    raise StoreError(f"{source.name} has no train split: the store needs one for its pixel statistics")
  if source.every_class_trained:
    _check_every_class_trained(source, shard_stats["train"])
  size = tasks[0]["size"]
  split_infos = []
  for split, stats in shard_stats.items():
    num_bytes = sum(os.path.getsize(t["record_path"]) for t in tasks if t["split"] == split)
    split_infos.append(
      tfds.core.SplitInfo(name=split, shard_lengths=[int(s["count"]) for s in stats], num_bytes=num_bytes)
    )
  tfds.folder_dataset.write_metadata(
    data_dir=path,
    features=store_features(source.label_names, size, source.file_names),
    split_infos=split_infos,
    check_data=False,
    description=f"{dataset} as {size}x{size} squares ({plan['resize']}) of {source.name} (prepare_store)",
  )
  skipped = {split: [str(name) for s in stats for name in s["skipped"]] for split, stats in shard_stats.items()}
  utils.write_json_atomically(os.path.join(path, store.INFO_FILE), {**plan, "skipped": skipped})
  stats = io.BytesIO()
  np.savez(stats, **pixel_stats(shard_stats["train"], size))
  utils.write_bytes_atomically(os.path.join(path, store.STATS_FILE), stats.getvalue())


def _check_every_class_trained(source: Source, train_stats: list[dict]) -> None:
  """A class none of whose train images could be read is a :class:`StoreError` naming it (it could not be learnt)."""
  labels = np.concatenate([np.asarray(s.get("labels", []), np.int64) for s in train_stats])
  counts = np.bincount(labels, minlength=len(source.label_names))
  empty = [name for name, count in zip(source.label_names, counts) if count == 0]
  if empty:
    raise StoreError(
      f"{source.name}: the class {empty[0]!r} has no readable picture in the train split (the unreadable ones"
      " are named above): add pictures to it, or remove it, and rerun"
    )


def skipped_summary(path: str) -> str:
  """One line: how many images the store left out, per split, and where they are named."""
  skipped = store.read_info(path).get("skipped", {})
  counts = ", ".join(f"{split}: {len(names)}" for split, names in sorted(skipped.items()))
  total = sum(len(names) for names in skipped.values())
  where = f", named in {os.path.join(path, store.INFO_FILE)}" if total else ""
  return f"{total} unreadable images left out ({counts or 'none recorded'}){where}"


def main(argv):
  del argv
  start = time.perf_counter()
  try:
    input_options.check(flags.FLAGS.config)  # the data fields: the store needs no other
    path = prepare(
      flags.FLAGS.config,
      workers=flags.FLAGS.workers,
      quality=flags.FLAGS.quality,
      images_per_shard=flags.FLAGS.images_per_shard,
      on_bad_image=flags.FLAGS.on_bad_image,
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
  count = sum(splits.values())
  print(skipped_summary(path))
  print(
    f"store ready in {path}: {splits}, resize={store.resize_method(path)} ({time.perf_counter() - start:.1f} s, "
    f"{1e3 * cpu / count:.1f} CPU-ms per image over all processes, start-up included)"
  )


if __name__ == "__main__":
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  # Defined here, not at import, so importing this module adds no flags to other commands.
  config_flags.DEFINE_config_file("config", "experiments/imagenet2012.py", lock_config=True)
  flags.DEFINE_integer("workers", None, "Processes (default: all cores).")
  flags.DEFINE_integer("quality", 90, "JPEG quality of the stored squares.")
  flags.DEFINE_integer(
    "images_per_shard", 1024, "Images per output shard (ILSVRC-2012's train tar: one shard per class tar instead)."
  )
  flags.DEFINE_enum(
    "on_bad_image", "skip", ON_BAD_IMAGE, "An image no decoder reads: skip it (listed in the store) or stop."
  )
  from alexnet_jax import flag_errors  # pylint: disable=g-import-not-at-top

  app.run(main, flags_parser=flag_errors.parse_flags)
