"""Starting a run from another run's weights (``config.init_from``): fine-tuning.

The source is a work directory of a run trained here or imported (``alexnet_jax.import_weights``). Its
newest checkpoint that reads gives the weights -- the moving average where the run kept one, as the
commands that use a run read it -- and nothing else: the optimizer state, the step, the plateau record
and the dropout stream stay those of the new run at step 0. The checkpoint is read without a template
(its own shapes), so a layer that differs is named with both shapes; fc8 is drawn anew (the new run's
initialisation) when only the class count differs, the one difference a fine-tuning run expects.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import logging
from flax import nnx

from alexnet_jax import errors
from alexnet_jax.model import alexnet
from alexnet_jax.train import checkpoints
from alexnet_jax.train.state import TrainState

OUTPUT_LAYER = alexnet.LAYER_NAMES[-1]  # fc8: its shape follows the class count


class InitFromError(errors.UserError, ValueError):
  """``config.init_from`` names no readable run, or one whose layers do not fit this run's model."""


def start_from(state: TrainState, workdir: str) -> TrainState:
  """``state`` (a new run's, at step 0) with the weights of the run in ``workdir``; its moving average,
  if it keeps one, starts at them too."""
  source, step = source_params(workdir)
  params = merged_params(state.params, source, workdir)
  logging.info("Starting from the weights of %s (its checkpoint of step %d)", workdir, step)
  ema = None if state.ema_params is None else jax.tree.map(lambda x: x.copy(), params)
  return state.replace(params=params, ema_params=ema)


def source_params(workdir: str) -> tuple[dict, int]:
  """(the delivered parameters of ``workdir``'s newest readable checkpoint as nested dicts, its step)."""
  directory = checkpoints.checkpoint_dir(workdir)
  if not os.path.isdir(directory):
    raise InitFromError(
      f"config.init_from={workdir} holds no run to start from: there is no {directory} (train or import one there)"
    )
  checkpointer = checkpoints.Checkpointer(directory, keep=1, every_steps=1, read_only=True)
  try:
    restored, _ = checkpointer.read_newest(None)
  except checkpoints.CheckpointError as error:
    raise InitFromError(f"config.init_from={workdir}: {error}") from error
  finally:
    checkpointer.close()
  return restored.get("ema_params") or restored["params"], int(restored["step"])


def merged_params(fresh: nnx.State, source: dict, workdir: str) -> nnx.State:
  """``fresh`` with every parameter replaced by ``source``'s, placed as ``fresh``'s; fc8 kept fresh when
  the class counts differ. A missing parameter or any other shape difference raises InitFromError."""
  found = {alexnet.param_path(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(source)}
  wanted = {alexnet.param_path(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(fresh)}
  mismatched = {path for path in wanted if path in found and np.shape(found[path]) != wanted[path].shape}
  for path in wanted:
    if path not in found:
      raise InitFromError(f"config.init_from={workdir}: its checkpoint has no {_where(path)}")
  redraw = _redraw_output_layer(mismatched, found, wanted, workdir)
  for path in sorted(mismatched - redraw):
    raise InitFromError(
      f"config.init_from={workdir}: {_where(path)} is {tuple(np.shape(found[path]))} there and"
      f" {tuple(wanted[path].shape)} in this run's model; fine-tuning keeps every layer but fc8's class count"
    )
  return jax.tree_util.tree_map_with_path(
    lambda path, leaf: _placed(found, alexnet.param_path(path), leaf, redraw), fresh
  )


def _redraw_output_layer(mismatched: set, found: dict, wanted: dict, workdir: str) -> set:
  """The paths of fc8 when only its class count differs (logged), else none."""
  output = {path for path in wanted if alexnet.layer_name(path) == OUTPUT_LAYER}
  if not mismatched & output or any(np.shape(found[p])[:-1] != wanted[p].shape[:-1] for p in output):
    return set()
  bias = next(path for path in output if path[-2] == "bias")
  logging.warning(
    "%s has %d classes, this run %d: %s starts anew (this run's initialisation), every other layer from there",
    workdir,
    np.shape(found[bias])[-1],
    wanted[bias].shape[-1],
    OUTPUT_LAYER,
  )
  return output


def _placed(found: dict, path: tuple[str, ...], fresh: jax.Array, redraw: set) -> jax.Array:
  """The source's value of ``path`` with ``fresh``'s dtype and sharding, or ``fresh`` where it is redrawn."""
  if path in redraw:
    return fresh
  return jax.device_put(np.asarray(found[path]).astype(fresh.dtype), fresh.sharding)


def _where(path: tuple[str, ...]) -> str:
  """``conv2's kernel``: a parameter named by its layer."""
  return f"{alexnet.layer_name(path)}'s {path[-2]}"
