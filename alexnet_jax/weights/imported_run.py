"""A reference's weight file made a run directory that ``evaluate``, ``predict``, ``figures`` and
``export`` read like a trained one.

The directory holds what a trained run holds -- ``config.json`` (the reference's net as model options
and its test preprocessing as ``config.input``) and a checkpoint of step 0 whose parameters are the
file's -- plus ``imported.json``, where the weights came from (file name, size, sha256, format and
layout, the reference and its published accuracy) and, with a Caffe mean image, ``mean_image.npy``
(0-255 RGB). It is written in a temporary directory beside the target and renamed into place when
complete: a file that does not fit leaves nothing behind.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pickle
import shutil
import tempfile

import jax
import numpy as np
from flax import nnx

from alexnet_jax import errors, utils
from alexnet_jax.train import checkpoints, optimizers, run_dir, state, validation
from alexnet_jax.weights import caffemodel, layouts, references, torch_file

MEAN_IMAGE_FILE = "mean_image.npy"


class WeightFileError(errors.UserError, ValueError):
  """A weight file (or mean file) that cannot be read; the message names it."""


def read_layers(path: str) -> tuple[references.Reference, str, dict[str, tuple[np.ndarray, ...]]]:
  """(the reference, the format in words, layer name -> (weights, bias)) of a ``.pth`` (torch's zip or
  legacy format) or a ``.caffemodel`` (anything else), told apart by their first bytes."""
  try:
    if torch_file.is_torch_file(_read_bytes(path, 16)):
      return references.TORCHVISION, torch_file.FORMAT, _by_layer(torch_file.read_state_dict(path))
    layout, layers = caffemodel.read_layers(_read_bytes(path))
  except (ValueError, pickle.UnpicklingError, EOFError) as error:
    raise WeightFileError(f"{path}: not a torchvision state dict or a caffemodel ({error})") from error
  return references.BVLC, f"{caffemodel.FORMAT}, {layout}", {layer.name: layer.blobs for layer in layers}


def _by_layer(state_dict: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, ...]]:
  """A state dict's "features.0.weight", "features.0.bias" as {"features.0": (weight, bias)}."""
  layers = {}
  for name, array in state_dict.items():
    layer, _, kind = name.rpartition(".")
    layers.setdefault(layer, {})[kind] = array
  return {layer: tuple(blobs[kind] for kind in ("weight", "bias") if kind in blobs) for layer, blobs in layers.items()}


def read_mean_image(path: str) -> np.ndarray:
  """A Caffe mean ``.binaryproto`` (1 x 3 x H x W, BGR, 0-255) as an (H, W, 3) RGB float32 image."""
  try:
    blob = caffemodel.read_blob(_read_bytes(path))
  except ValueError as error:
    raise WeightFileError(f"--mean={path}: not a Caffe BlobProto ({error})") from error
  if blob.ndim != 4 or blob.shape[:2] != (1, 3):
    raise WeightFileError(
      f"--mean={path}: a mean image is 1 x 3 x H x W, this blob is {' x '.join(map(str, blob.shape))}"
    )
  return np.ascontiguousarray(blob[0, ::-1].transpose(1, 2, 0), np.float32)


def write(workdir: str, weights_path: str, mean_path: str | None = None) -> dict:
  """Imports ``weights_path`` (and the mean image at ``mean_path``) into the new run ``workdir``;
  returns the provenance recorded there. Refuses a ``workdir`` that exists."""
  if os.path.lexists(workdir):
    raise run_dir.WorkdirError(f"--workdir={workdir} exists; give a new directory for the imported run")
  reference, file_format, layers = read_layers(weights_path)
  mean_image = read_mean_image(mean_path) if mean_path else None
  fc8 = layers.get(reference.layer_names[-1], ())
  num_classes = int(fc8[-1].size) if len(fc8) == 2 else 1000
  config = references.config(reference, num_classes, mean_image_file=MEAN_IMAGE_FILE if mean_path else "")
  validation.validate(config, device_count=1)
  model = nnx.eval_shape(lambda: state.create_model(config, nnx.Rngs(params=0, dropout=0)))
  _, params, _ = nnx.split(model, nnx.Param, ...)
  converted = layouts.convert(layers, reference.layer_names, nnx.to_pure_dict(params), bgr=reference.bgr)
  nnx.replace_by_pure_dict(params, jax.tree.map(jax.numpy.asarray, converted))
  provenance = _provenance(reference, file_format, weights_path, mean_path)
  parent = os.path.dirname(os.path.abspath(workdir))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=".import-", dir=parent)
  try:
    _write_run(staging, config, params, provenance, mean_image)
    os.rename(staging, workdir)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return provenance


def _write_run(directory: str, config, params: nnx.State, provenance: dict, mean_image: np.ndarray | None) -> None:
  """config.json, imported.json, the mean image and the step-0 checkpoint of ``params``."""
  tx = optimizers.create_optimizer(config)
  train_state = state.step_zero(params, tx, jax.random.key(config.seed), ema=False)
  checkpointer = checkpoints.Checkpointer(checkpoints.checkpoint_dir(directory), keep=1, every_steps=1)
  try:
    checkpointer.save(0, train_state, {"imported": provenance["file"]}, force=True)
  finally:
    checkpointer.close()
  if mean_image is not None:
    np.save(os.path.join(directory, MEAN_IMAGE_FILE), mean_image)
  run_dir.record_config(directory, json.loads(config.to_json_best_effort()))
  utils.write_json_atomically(os.path.join(directory, run_dir.IMPORTED_FILE), provenance)


def _provenance(reference: references.Reference, file_format: str, path: str, mean_path: str | None) -> dict:
  record = {
    "reference": reference.name,
    "published": reference.published,
    "format": file_format,
    **_file_record(path),
    "conv1_channels": "BGR in the file, reversed at import: the run reads RGB" if reference.bgr else "RGB",
    "imported_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
  }
  if mean_path:
    record["mean_image"] = _file_record(mean_path)
  return record


def _file_record(path: str) -> dict:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 22), b""):
      digest.update(chunk)
  return {"file": os.path.basename(path), "bytes": os.path.getsize(path), "sha256": digest.hexdigest()}


def _read_bytes(path: str, size: int = -1) -> bytes:
  """The first ``size`` bytes of the file (all of it by default); WeightFileError if it cannot be read."""
  try:
    with open(path, "rb") as f:
      return f.read(size)
  except OSError as error:
    raise WeightFileError(f"{path}: cannot be read ({error.strerror or error})") from error
