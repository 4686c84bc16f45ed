"""The one loader: grain over the dataset's ArrayRecord data sources, batches of uint8 central squares.

Both iterators read an :class:`~alexnet_jax.data.input_spec.InputSpec` and nothing else.

Training (:func:`train_batches`). The order is a pure function of (seed, epoch) over the *global*
dataset: global position ``q`` holds example ``order[q]`` of ``grain.MapDataset.range(N)
.shuffle(seed).repeat()`` (a fresh permutation each epoch; epochs follow each other without a gap),
and global batch ``k`` is positions ``[k G, (k + 1) G)``. Input shard ``i`` of ``n`` takes its slice
``[k G + i L, k G + (i + 1) L)`` of every global batch (``L = G / n``), so the global stream does not
depend on the number of processes: a run resumed with another process count continues the same
global batches. Resuming at step ``k`` is random access (position ``k L`` of the shard's index
dataset), not a replay. The step draws the crops, flips and colour noise (``augment.py``).

Evaluation (:func:`eval_batches`). Positions ``0 .. ceil(N / G) G`` in order, sliced the same way;
positions past the split's end are padding with ``mask == 0``: every example counts exactly once and
every shard runs the same number of batches.

Routes (``InputSpec.route``): ``IN_MEMORY`` gathers a batch from the split's squares decoded once
(:func:`squares_in_memory`); ``STREAMED`` reads each batch's records and decodes them into one uint8
array (``images.decode``, libjpeg-turbo for JPEGs), with grain's read-ahead threads doing several
batches at once (the decoder releases the GIL; threads cost half the CPU of worker processes here:
``docs/measurements.md``). No TensorFlow anywhere.
"""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterator

import grain
import numpy as np
from absl import logging

from alexnet_jax.data import datasets, images, index_shuffle
from alexnet_jax.data.input_spec import InputSpec, Route

Batch = dict[str, np.ndarray]
PREFETCH_BATCHES = 4
PARALLEL_DECODE_MIN_IMAGES = 20_000  # an in-memory split this large is decoded by several processes
_PADDING = -1  # example index of an eval position past the end of the split
_SHUFFLE_ROUNDS = 4  # grain's ShuffleMapDataset: the order of every run so far
_EPOCH_ORDER_LOCK = threading.Lock()
Square = Callable[[bytes, np.ndarray, InputSpec], None]  # one encoded image into its row of the batch


def train_batches(
  spec: InputSpec, *, start_step: int = 0, shard_index: int = 0, shard_count: int = 1, square: Square | None = None
) -> Iterator[Batch]:
  """Endless {"image": uint8 (L, R, R, C), "label": int32 (L,)} of input shard ``shard_index``,
  from step ``start_step`` on: exactly what a run from step 0 yields from that step.

  ``square``: how the streamed route writes one encoded image into its row of the batch
  (:func:`square_into`; the input benchmark swaps in a copy to time all but the decode)."""
  local = spec.local_batch(shard_count)
  indices = functools.partial(
    _train_indices, count=spec.num_train, seed=spec.seed % 2**32, batch=spec.batch_size, local=local, shard=shard_index
  )
  steps = grain.MapDataset.range(start_step, sys.maxsize).map(indices)
  return _batches(spec, spec.train_split, steps, with_mask=False, square=square or square_into)


def eval_batches(
  spec: InputSpec,
  *,
  shard_index: int = 0,
  shard_count: int = 1,
  split: str | None = None,
  num_examples: int | None = None,
) -> Iterator[Batch]:
  """One pass over the eval split (or ``split``, of ``num_examples``), in order, padded:
  {"image", "label", "mask"}; "mask" is 1.0 for real examples and 0.0 for padding."""
  split = spec.eval_split if split is None else split
  count = spec.num_eval if num_examples is None else num_examples
  local = spec.local_batch(shard_count)
  num_batches = -(-count // spec.batch_size)
  indices = functools.partial(_eval_indices, count=count, batch=spec.batch_size, local=local, shard=shard_index)
  steps = grain.MapDataset.range(num_batches).map(indices)
  return _batches(spec, split, steps, with_mask=True, square=square_into)


def _positions(step: int, *, batch: int, local: int, shard: int) -> np.ndarray:
  """Global stream positions of a shard's part of global batch ``step`` (see the module docstring)."""
  return np.arange(local) + (step * batch + shard * local)


def _train_indices(step: int, *, count: int, seed: int, **where) -> np.ndarray:
  """The examples of a shard's part of training batch ``step``: position ``q`` holds ``order[q]`` of
  ``grain.MapDataset.range(count).shuffle(seed).repeat()``, looked up in its epoch's order."""
  epochs, within = np.divmod(_positions(step, **where), count)
  indices = np.empty_like(within)
  for epoch in np.unique(epochs).tolist():  # one epoch, or two across a boundary
    rows = epochs == epoch
    indices[rows] = _epoch_order(count, seed, epoch)[within[rows]]
  return indices


def _epoch_order(count: int, seed: int, epoch: int) -> np.ndarray:
  """Epoch ``epoch``'s examples in training order: grain's shuffle of ``range(count)`` with seed
  ``seed + epoch`` (``index_shuffle.py``), computed once per epoch by one thread (~0.3 s for ImageNet)
  rather than one grain element (~20 CPU-us) per example."""
  with _EPOCH_ORDER_LOCK:
    return _computed_epoch_order(count, seed, epoch)


@functools.lru_cache(maxsize=4)  # this epoch and the next, of up to two streams
def _computed_epoch_order(count: int, seed: int, epoch: int) -> np.ndarray:
  order = index_shuffle.index_shuffle(np.arange(count), count - 1, (seed + epoch) % 2**32, _SHUFFLE_ROUNDS)
  order.flags.writeable = False
  return order


def _eval_indices(step: int, *, count: int, **where) -> np.ndarray:
  """The examples of a shard's part of eval batch ``step``, in order; positions past the split's end
  are :data:`_PADDING`."""
  positions = _positions(step, **where)
  return np.where(positions < count, positions, _PADDING)


def _batches(
  spec: InputSpec, split: str, index_batches: grain.MapDataset, *, with_mask: bool, square: Square
) -> Iterator[Batch]:
  if spec.route is Route.IN_MEMORY:
    pixels, labels = squares_in_memory(spec, split)
    read = functools.partial(_gather, pixels=pixels, labels=labels)
    threads = 1  # a gather: one thread keeps ahead of any step
  else:
    read = functools.partial(_read_and_decode, source=spec.source(split), spec=spec, square=square)
    threads = spec.read_threads
  batches = index_batches.map(functools.partial(_with_mask, read=read) if with_mask else read)
  options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=PREFETCH_BATCHES)
  return _reading(iter(batches.to_iter_dataset(options)), spec)


def _with_mask(indices: np.ndarray, *, read) -> Batch:
  real = indices != _PADDING
  batch = read(np.where(real, indices, 0))
  batch["image"][~real] = 0
  batch["label"][~real] = 0
  return {**batch, "mask": real.astype(np.float32)}


def _gather(indices: np.ndarray, *, pixels: np.ndarray, labels: np.ndarray) -> Batch:
  return {"image": pixels[indices], "label": labels[indices]}


def _read_and_decode(indices: np.ndarray, *, source, spec: InputSpec, square: Square) -> Batch:
  """The records at ``indices`` decoded into one (L, R, R, C) uint8 array: whole squares, unflipped."""
  try:
    records = source.__getitems__(indices.tolist())
  except (RuntimeError, ValueError) as error:  # array_record's checksums: "Corrupted Riegeli/records file"
    raise OSError(str(error)) from error
  damaged = [int(i) for i, record in zip(indices, records) if record is None]
  if damaged:  # what TFDS's ArrayRecord source gives for a truncated file
    raise OSError(f"records {damaged[:5]} of the split cannot be read")
  size, channels = spec.resize_size, spec.image_channels
  out = np.empty((len(records), size, size, channels), np.uint8)
  for row, record in zip(out, records):
    square(record["image"], row, spec)
  return {"image": out, "label": np.asarray([r["label"] for r in records], np.int32)}


def square_into(data: bytes, out: np.ndarray, spec: InputSpec) -> None:
  """One encoded image as its uint8 square of ``spec.resize_size`` (by ``spec.resize``), written into ``out``
  (a store's squares decode straight into it)."""
  size = spec.image_size or images.encoded_size(data)  # read from the header only where sizes vary
  if size == out.shape[:2]:
    images.decode(data, spec.image_channels, out=out)
  else:
    out[...] = images.central_square(images.decode(data, spec.image_channels), spec.resize_size, spec.resize)


@functools.lru_cache(maxsize=4)
def squares_in_memory(spec: InputSpec, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 squares (N, R, R, C), int32 labels (N,)) of ``split``, decoded once per process.

  Decoding is Python work per image (~0.2 ms for a 28x28 PNG: TFDS's record parsing, PIL's decode
  and resize), so large splits are decoded by one worker process per core, in parallel."""
  count = len(spec.source(split))
  logging.info("Decoding %s's %d %s images into memory", spec.dataset, count, split)
  workers = min(os.cpu_count() or 1, count // PARALLEL_DECODE_MIN_IMAGES)
  bounds = np.linspace(0, count, max(workers, 1) + 1).astype(int)
  parts = [(spec, split, int(start), int(stop)) for start, stop in zip(bounds[:-1], bounds[1:])]
  try:
    if workers < 2:
      decoded = [_decode_part(*part) for part in parts]
    else:
      context = multiprocessing.get_context("spawn")  # fresh interpreters: no JAX threads inherited
      with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        decoded = list(pool.map(_decode_part, *zip(*parts)))
  except (OSError, ValueError, images.ImageDecodeError) as error:
    raise datasets.corrupt(spec.dataset, spec.dataset_dir, error) from error
  return np.concatenate([pixels for pixels, _ in decoded]), np.concatenate([labels for _, labels in decoded])


def _decode_part(spec: InputSpec, split: str, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
  """The squares and labels of examples ``start .. stop - 1`` of ``split``."""
  batch = _read_and_decode(np.arange(start, stop), source=spec.source(split), spec=spec, square=square_into)
  return batch["image"], batch["label"]


def _reading(batches: Iterator[Batch], spec: InputSpec) -> Iterator[Batch]:
  """``batches``, with a read failure of the prepared files turned into one message that says how
  to prepare them again (``datasets.corrupt``)."""
  try:
    yield from batches
  except (OSError, images.ImageDecodeError) as error:
    raise datasets.corrupt(spec.dataset, spec.dataset_dir, error) from error
