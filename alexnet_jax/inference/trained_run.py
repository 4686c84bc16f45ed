"""A trained run read back from its work directory: its recorded config, one checkpoint's parameters.

A run's ``WORKDIR/config.json`` (written by ``train/run_dir.py``) is the config it trained with;
rebuilding the model, the train-state template and the input pipeline from it means a command that
uses the run needs nothing but ``--workdir``. Inference runs on one device (``tower_parallel=1``):
the towers are the same parameters whichever mesh trained them, and orbax lays a checkpoint out on
whatever mesh the template has.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from alexnet_jax import errors, outputs, utils
from alexnet_jax.config import added_fields
from alexnet_jax.data import augment, options
from alexnet_jax.inference import imagenet_classes
from alexnet_jax.parallel import sharding
from alexnet_jax.train import checkpoints, optimizers, run_config, run_dir, state, steps, validation


class RunError(errors.UserError, RuntimeError):
  """The work directory holds no usable run; the message says why."""


@dataclasses.dataclass(frozen=True)
class TrainedRun:
  """One checkpoint of a run: its config, step, the model's static half and its parameters."""

  workdir: str
  config: ml_collections.ConfigDict
  step: int
  model_def: state.ModelDef
  params: nnx.State
  mesh: jax.sharding.Mesh
  averaged: bool = False  # params are the moving average of the trained weights (config.ema_decay)
  imported: bool = False  # weights imported from a reference's file (alexnet_jax.import_weights), not trained here

  @functools.cached_property
  def spec(self):
    """The run's input spec (``data/input_spec.py``): its dataset, test views and pixel constants."""
    from alexnet_jax.data import datasets, input_spec  # pylint: disable=g-import-not-at-top -- reads the dataset

    datasets.prepare(self.config)
    return input_spec.build(self.config)

  @functools.cached_property
  def view_spec(self):
    """The spec that makes test views of squares: :attr:`spec`, except for an imported run, whose
    preprocessing is all in its config: then without the dataset (``predict`` needs no ImageNet)."""
    return _spec_from_config(self.config) if self.imported else self.spec

  @functools.cached_property
  def _log_probs_fn(self):
    def log_probs(params, squares):
      views = augment.eval_views(squares, self.view_spec)
      return steps.eval_log_probs(
        params, views, model_def=self.model_def, mesh=self.mesh, parallelism=self.config.parallelism
      )

    return jax.jit(log_probs)

  @functools.cached_property
  def _fc7_fn(self):
    def fc7(params, squares):
      views = augment.eval_views(squares, self.view_spec)
      if views.ndim == 5:
        views = views[:, options.CENTER_VIEW[self.view_spec.eval_crops]]
      return self.model_def.eval_model(params).fc7_features(views)

    return jax.jit(fc7)

  def log_probs(self, squares: np.ndarray) -> np.ndarray:
    """Eval-mode log-probabilities (N, classes) of uint8 central squares (N, R, R, C), through the
    run's test views (the softmax averaged over several views)."""
    return in_batches(lambda batch: self._log_probs_fn(self.params, batch), squares, self.config.batch_size)

  def fc7_features(self, squares: np.ndarray) -> np.ndarray:
    """fc7's post-ReLU activations (N, fc width) of uint8 central squares, dropout off; of the centre
    view where the run's test views are several."""
    return in_batches(lambda batch: self._fc7_fn(self.params, batch), squares, self.config.batch_size)

  def label_names(self) -> list[str]:
    """The dataset's class names, index = label (ImageNet's by name, not WordNet id)."""
    names = imagenet_classes.names_for(self.config.dataset, self.config.model.num_classes)
    return list(names if names is not None else self.spec.label_names)


def _spec_from_config(config: ml_collections.ConfigDict):
  """An input spec of the test views from ``config`` alone (no dataset opened: no counts, no store)."""
  from alexnet_jax.data import input_spec  # pylint: disable=g-import-not-at-top -- reads the dataset's metadata

  return input_spec.InputSpec(
    dataset_dir="",
    num_train=0,
    num_eval=0,
    num_classes=config.model.num_classes,
    label_names=(),
    image_size=None,
    image_channels=options.image_channels(config.dataset),
    route=input_spec.Route.STREAMED,
    read_threads=1,  # predict reads no records
    **input_spec.config_fields(config, None),
  )


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The config recorded in ``workdir/config.json``, as a ConfigDict; RunError if there is none (a
  ``workdir`` that is a file, a symlink loop or a dangling symlink is named as such, as the trainer names it)."""
  if os.path.lexists(workdir) and not os.path.isdir(workdir):
    raise RunError(f"--workdir={workdir} {outputs.not_a_folder(workdir)}; give a trained run's folder")
  path = os.path.join(workdir, run_dir.CONFIG_FILE)
  try:
    with open(path) as f:
      recorded = json.load(f)
  except FileNotFoundError as error:
    raise RunError(f"--workdir={workdir} holds no run: there is no {path} (train one with alexnet_jax.main)") from error
  except (OSError, ValueError) as error:
    raise RunError(f"cannot read the run's config {path}: {error}") from error
  known = run_config.default_config().to_dict()
  return ml_collections.ConfigDict(with_new_fields(known_fields(recorded, known, path), added_fields.values_before()))


def known_fields(recorded, known: dict, path: str) -> dict:
  """``recorded`` (a config.json's data, perhaps edited by hand) with the fields this code knows: a JSON
  value that is not an object, or a section (``model``, ``input``, ...) that is not one, is a RunError naming
  it; a field the code does not know is left out, with one warning naming every such field."""
  if not isinstance(recorded, dict):
    raise RunError(f"{path} holds a JSON {_json_kind(recorded)}, not an object of config fields")
  unknown: list[str] = []
  kept = _known_part(recorded, known, "", path, unknown)
  if unknown:
    logging.warning("%s has fields this code does not know, left out: %s", path, ", ".join(unknown))
  return kept


def _known_part(recorded: dict, known: dict, prefix: str, path: str, unknown: list[str]) -> dict:
  kept = {}
  for key, value in recorded.items():
    name = f"config.{prefix}{key}"
    if key not in known:
      unknown.append(name)
    elif isinstance(known[key], dict):
      if not isinstance(value, dict):
        fields = ", ".join(known[key])
        raise RunError(f"{path}: {name} is a JSON {_json_kind(value)}, expected an object of its fields ({fields})")
      kept[key] = _known_part(value, known[key], f"{prefix}{key}.", path, unknown)
    else:
      kept[key] = value
  return kept


def _json_kind(value) -> str:
  """The JSON type of a value read from JSON, in words."""
  if value is None:
    return "null"
  kinds = ((bool, "boolean"), (dict, "object"), (list, "list"), (str, "string"), ((int, float), "number"))
  return next(words for types, words in kinds if isinstance(value, types))


def with_new_fields(recorded: dict, values_before: dict) -> dict:
  """``recorded`` plus every dotted field of ``values_before`` it lacks: a field added to the code after
  the run was recorded takes the value the run trained with (``config/added_fields.py``)."""
  present = utils.flatten(recorded)
  added = [(name, value) for name, value in values_before.items() if name not in present]
  if added:
    _warn_predates(tuple(name for name, _ in added))
  merged = json.loads(json.dumps(recorded))
  for name, value in added:
    *parents, leaf = name.split(".")
    node = merged
    for parent in parents:
      node = node.setdefault(parent, {})
    node[leaf] = value
  return merged


@functools.cache
def _warn_predates(names: tuple[str, ...]) -> None:
  """Says once per command (the config is read at the quick check and again at loading) which
  fields an older run lacks."""
  logging.warning("The run's config predates %s; using what runs did before them", ", ".join(names))


def check_workdir(workdir: str) -> ml_collections.ConfigDict:
  """The run's config if ``workdir`` has one and a checkpoint directory, else RunError: a quick check
  that commands make before they spend seconds importing TensorFlow."""
  config = read_config(workdir)
  directory = checkpoints.checkpoint_dir(workdir)
  if not os.path.isdir(directory):
    raise RunError(f"--workdir={workdir} has no checkpoints (no {directory}); train the run first")
  return config


def load(workdir: str, step: int | None = None, overrides: dict | None = None, *, average: bool = True) -> TrainedRun:
  """The run in ``workdir`` at checkpoint ``step`` (default: the latest), on one device, with the
  moving average of its weights where it has one (``config.ema_decay``), unless not ``average``.

  ``overrides`` maps dotted config fields to values for this use only (e.g. ``{"eval_split": "train"}``).
  Raises RunError for a workdir without a config or checkpoints, ``checkpoints.CheckpointError`` for a
  step that is not there or cannot be read, and ``validation.ConfigError`` for a config that is not valid.
  """
  config = check_workdir(workdir)
  config.tower_parallel = 1
  if config.input.mean_image_file:  # recorded relative to the run's directory
    config.input.mean_image_file = os.path.join(workdir, config.input.mean_image_file)
  for name, value in (overrides or {}).items():
    _set_field(config, name, value)
  validation.validate(config, device_count=1)
  directory = checkpoints.checkpoint_dir(workdir)
  checkpointer = checkpoints.Checkpointer(directory, keep=1, every_steps=1, read_only=True)
  try:
    mesh = sharding.create_mesh(1, devices=jax.local_devices()[:1])
    model_def, template = state.restore_target(config, mesh, optimizers.create_optimizer(config))
    # The newest that reads: a run still training deletes old checkpoints (keep_checkpoints) meanwhile.
    restored, _ = checkpointer.read_newest(template) if step is None else checkpointer.restore(step, template)
  finally:
    checkpointer.close()
  params = restored.delivered_params if average else restored.params
  imported = os.path.exists(os.path.join(workdir, run_dir.IMPORTED_FILE))
  return TrainedRun(
    workdir,
    config,
    int(restored.step),
    model_def,
    params,
    mesh,
    averaged=params is restored.ema_params,
    imported=imported,
  )


def in_batches(fn, images: np.ndarray, batch_size: int) -> np.ndarray:
  """``fn`` over ``images`` in batches of ``batch_size``, the last one padded (one compiled shape)."""
  outputs = []
  for start in range(0, len(images), batch_size):
    batch = np.asarray(images[start : start + batch_size])
    padding = batch_size - len(batch)
    padded = np.concatenate([batch, np.zeros((padding, *batch.shape[1:]), batch.dtype)]) if padding else batch
    outputs.append(np.asarray(fn(padded))[: len(batch)])
  return np.concatenate(outputs)


def _set_field(config: ml_collections.ConfigDict, name: str, value) -> None:
  *parents, leaf = name.split(".")
  node = config
  for parent in parents:
    node = node[parent]
  node[leaf] = value
