"""The device mesh: a ``data`` axis that splits the batch and a ``tower`` axis for the model's towers.

``tower_parallel=1`` is pure data parallelism over every device. The train step never branches on
the mesh: it calls :func:`forward`, and places batches with :func:`batch_sharding`.
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
TOWER_AXIS = "tower"


def create_mesh(tower_parallel: int = 1, devices=None) -> Mesh:
  """A (data, tower) mesh over ``devices`` (default: all), ``tower_parallel`` devices per tower group."""
  devices = jax.devices() if devices is None else devices
  if tower_parallel < 1 or len(devices) % tower_parallel:
    raise ValueError(
        f"tower_parallel={tower_parallel} must be >= 1 and divide the device count {len(devices)}")
  grid = np.asarray(devices).reshape(len(devices) // tower_parallel, tower_parallel)
  return Mesh(grid, (DATA_AXIS, TOWER_AXIS))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Batches are split over ``data`` (and replicated over ``tower``: both towers see every image)."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def shard_model(model: nnx.Module, mesh: Mesh) -> None:
  """Places ``model``'s state on ``mesh`` in place (replicated under pure data parallelism)."""
  state = nnx.state(model)
  nnx.update(model, jax.device_put(state, replicated(mesh)))


def forward(model: nnx.Module, images: jax.Array, mesh: Mesh) -> jax.Array:
  """Logits of ``model`` on ``images`` laid out for ``mesh``."""
  if mesh.shape[TOWER_AXIS] != 1:
    raise NotImplementedError("tower_parallel > 1 is not wired into the train step yet")
  return model(images)
