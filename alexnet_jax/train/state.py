"""The train state (everything a step changes) and the model's static half, created on a mesh.

Imports neither TensorFlow nor the input pipeline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from alexnet_jax.model import alexnet
from alexnet_jax.parallel import sharding
from alexnet_jax.train import optimizers

if TYPE_CHECKING:  # configs are ml_collections ConfigDicts; the benchmark runs without it
  import ml_collections


@flax.struct.dataclass
class TrainState:
  """Everything a step changes; checkpointed whole."""

  step: jax.Array
  params: nnx.State
  opt_state: optax.OptState
  plateau: optimizers.PlateauState
  rng: jax.Array  # key data of the dropout stream; step t draws from fold_in(rng, t)
  # The exponential moving average of ``params`` (``config.ema_decay`` > 0), else None: then the
  # model that evaluations report and inference loads (:attr:`delivered_params`).
  ema_params: nnx.State | None = None

  @property
  def delivered_params(self) -> nnx.State:
    """The parameters a run delivers: the moving average where there is one, else the trained ones."""
    return self.params if self.ema_params is None else self.ema_params


@dataclasses.dataclass(frozen=True)
class ModelDef:
  """The static half of the model: its graph in train and eval mode and its RNG variables."""

  train_graph: Any
  eval_graph: Any
  rng_state: nnx.State

  def train_model(self, params: nnx.State, dropout_key: jax.Array) -> alexnet.AlexNet:
    # Fresh RNG variables in the caller's trace (the stored ones belong to the eager one), then
    # reseeded: the dropout masks depend only on ``dropout_key``.
    rng_state = jax.tree.map(lambda x: x, self.rng_state)
    model = nnx.merge(self.train_graph, params, rng_state)
    nnx.reseed(model, dropout=dropout_key)
    return model

  def eval_model(self, params: nnx.State) -> alexnet.AlexNet:
    # Fresh RNG variables here too: the tower-parallel forward writes them back after shard_map.
    return nnx.merge(self.eval_graph, params, jax.tree.map(lambda x: x, self.rng_state))


def create_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> alexnet.AlexNet:
  """AlexNet from ``config.model``: its fields are the model's options (``model/options.py``)."""
  return alexnet.AlexNet(**config.model.to_dict(), rngs=rngs)


def create_train_state(
  config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, tx: optax.GradientTransformation
) -> tuple[ModelDef, TrainState]:
  """A freshly initialised model of ``config`` on ``mesh`` and its train state at step 0."""
  return init_train_state(
    lambda rngs: create_model(config, rngs), config.seed, mesh, tx, config.parallelism, ema=config.ema_decay > 0
  )


def init_train_state(
  model_factory: Callable[[nnx.Rngs], nnx.Module],
  seed: int,
  mesh: jax.sharding.Mesh,
  tx: optax.GradientTransformation,
  parallelism: str = "towers",
  *,
  ema: bool = False,
) -> tuple[ModelDef, TrainState]:
  """``model_factory(rngs)`` initialised from ``seed`` on ``mesh``, and its train state at step 0
  (with ``ema``, a moving average of the parameters starting at their initial values).

  The benchmark calls this directly (it has no config); training goes through
  :func:`create_train_state`.
  """
  params_key, dropout_key = jax.random.split(jax.random.key(seed))
  model = sharding.create_sharded_model(
    lambda: model_factory(nnx.Rngs(params=params_key, dropout=dropout_key)), mesh, parallelism
  )
  train_graph, params, rng_state = nnx.split(model, nnx.Param, ...)
  eval_graph = nnx.graphdef(nnx.view(model, deterministic=True))
  state = step_zero(params, tx, dropout_key, ema=ema)
  return ModelDef(train_graph, eval_graph, rng_state), _replicate_unplaced(state, mesh)


def step_zero(params: nnx.State, tx: optax.GradientTransformation, dropout_key: jax.Array, *, ema: bool) -> TrainState:
  """The train state at step 0 around ``params``: what a checkpoint of this run holds, leaf for leaf."""
  return TrainState(
    step=jnp.int32(0),
    params=params,
    opt_state=tx.init(params),
    plateau=optimizers.init_plateau(),
    rng=jax.random.key_data(dropout_key),
    ema_params=jax.tree.map(jnp.copy, params) if ema else None,
  )


def restore_target(
  config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, tx: optax.GradientTransformation
) -> tuple[ModelDef, TrainState]:
  """The model's static half and the *shapes* of its train state, every leaf replicated on ``mesh``:
  what a reader (evaluate, predict, export, ...) restores a checkpoint into.

  Nothing is initialised or compiled (``eval_shape`` only): tracing and lowering the initialisers
  of :func:`create_train_state` cost a command about 1.5 s of its start here, each time, even with
  the compilation cache warm. The RNG variables (dropout's, unused in eval mode) are zeros of
  their shapes. Replicated leaves suit a one-device mesh, the readers' own.
  """
  model = nnx.eval_shape(lambda: create_model(config, nnx.Rngs(params=0, dropout=0)))
  train_graph, params, rng_shapes = nnx.split(model, nnx.Param, ...)
  eval_graph = nnx.graphdef(nnx.view(model, deterministic=True))
  shapes = jax.eval_shape(lambda p: step_zero(p, tx, jax.random.key(0), ema=config.ema_decay > 0), params)
  replicated = sharding.replicated(mesh)
  target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=replicated), shapes)
  return ModelDef(train_graph, eval_graph, jax.tree.map(_zeros, rng_shapes)), target


def _zeros(shape: jax.ShapeDtypeStruct) -> jax.Array:
  """A concrete array of ``shape`` (random keys included: the key whose data are zeros)."""
  if jnp.issubdtype(shape.dtype, jax.dtypes.prng_key):
    key_data = jax.eval_shape(jax.random.key_data, jax.random.key(0)).shape
    return jax.random.wrap_key_data(np.zeros((*shape.shape, *key_data), np.uint32))
  return jnp.zeros(shape.shape, shape.dtype)


def _replicate_unplaced(tree, mesh):
  """Puts leaves not yet on ``mesh`` (counters, hyper-parameters, keys) on it, replicated.

  The optimizer's per-parameter arrays already follow their parameter's sharding (optax builds
  them with ``zeros_like``); only the scalars are left on the default device.
  """
  replicated = sharding.replicated(mesh)
  on_mesh = lambda x: isinstance(x.sharding, jax.sharding.NamedSharding) and x.sharding.mesh == mesh
  return jax.tree.map(lambda x: x if on_mesh(x) else jax.device_put(x, replicated), tree)
