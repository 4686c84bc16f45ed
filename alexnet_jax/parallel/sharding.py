"""The device mesh, where every parameter and batch lives on it, and the sharded forward pass.

The mesh has two axes: ``data`` splits the batch, ``tower`` holds the model's towers. With
``tower_parallel=1`` every device is on ``data`` (pure data parallelism). With ``tower_parallel=2``
each pair of devices on ``tower`` runs the paper's two towers (Figure 2): device t of a pair holds
only tower t's slice of every towered parameter (conv1-conv5, fc6, fc7; fc8 is replicated) and
the pair exchanges activations only before conv3, fc6, fc7 and fc8.

Two placements of the FC layers (``parallelism``):

* ``"towers"`` (the 2012 paper): every towered layer is split over ``tower``; both devices of a
  pair see the same images, each computes its own tower.
* ``"weird_trick"`` (Krizhevsky 2014, "One weird trick for parallelizing convolutional neural
  networks"): the convolutions are data-parallel over all devices (replicated weights, the batch
  split over ``data`` x ``tower``); only fc6 and fc7 are split over ``tower``, whose devices
  gather each other's conv features before the FC layers.

The train step never branches on the mesh: it places batches with :func:`batch_sharding` (or
:func:`global_batch` when several processes feed one batch) and calls :func:`forward`.

Under ``tower_parallel=2`` :func:`forward` is one ``jax.shard_map`` over both axes, so every
collective is written out: the exchanges (``all_gather`` over ``tower``) in the model and the
gradient reduction over ``data`` as shard_map's transpose. (Leaving ``data`` to the compiler
inside a ``tower``-manual shard_map made XLA gather the batch over ``data`` at every exchange.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from alexnet_jax.model import towers
from alexnet_jax.parallel.options import PARALLELISMS

DATA_AXIS = "data"
TOWER_AXIS = "tower"


def create_mesh(tower_parallel: int = 1, devices=None) -> Mesh:
  """A (data, tower) mesh over ``devices`` (default: all), ``tower_parallel`` devices per tower group.

  The tower axis varies fastest, so a tower pair is two neighbouring devices (on one host when
  each host has an even number of devices): the exchanges ride the fastest link and only the
  gradient reduction crosses hosts.
  """
  devices = jax.devices() if devices is None else list(devices)
  _raise_first(tower_parallel_problem(tower_parallel, len(devices)))
  shape = (len(devices) // tower_parallel, tower_parallel)
  return jax.make_mesh(shape, (DATA_AXIS, TOWER_AXIS), (AxisType.Auto, AxisType.Auto), devices=devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Batches are split over ``data`` (and replicated over ``tower``: both towers see every image)."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


# ---------------------------------------------------------------- the layout rules, written once
# Each returns a message naming the config field, or None. Config validation runs them up front;
# the functions below raise the same message when called with a layout that breaks them.


def tower_parallel_problem(tower_parallel, device_count: int) -> str | None:
  if not (isinstance(tower_parallel, int) and not isinstance(tower_parallel, bool)) or tower_parallel < 1:
    return f"config.tower_parallel={tower_parallel!r} must be an integer >= 1"
  if device_count % tower_parallel:
    return f"config.tower_parallel={tower_parallel} must divide the number of devices ({device_count})"
  return None


def towers_problem(tower_parallel: int, towers) -> str | None:
  if tower_parallel > 1 and tower_parallel != towers:
    return (
      f"config.tower_parallel={tower_parallel} must be 1 (data parallelism only) or "
      f"equal config.model.towers={towers} (one tower per device)"
    )
  return None


def parallelism_problem(parallelism) -> str | None:
  if parallelism not in PARALLELISMS:
    return f"config.parallelism={parallelism!r} is not allowed; choose one of {PARALLELISMS}"
  return None


def batch_problem(batch_size: int, device_count: int, tower_parallel: int, parallelism: str) -> str | None:
  """Every device must get the same share: of the data-parallel rows, or (weird_trick) of all."""
  data_parallel = max(device_count // tower_parallel, 1)
  if parallelism == "weird_trick" and tower_parallel > 1:
    shards = data_parallel * tower_parallel
    if batch_size % shards:
      return (
        f"config.batch_size={batch_size} must be divisible by {shards}, the number of batch "
        f"shards of 'weird_trick' (its convolutions split the batch over all {shards} devices)"
      )
    return None
  if batch_size % data_parallel:
    return (
      f"config.batch_size={batch_size} must be divisible by the data-parallel size "
      f"({data_parallel} = {device_count} devices / tower_parallel {tower_parallel}) "
      "so every device gets the same share"
    )
  return None


def _raise_first(*problems: str | None) -> None:
  for problem in problems:
    if problem:
      raise ValueError(problem)


def check_parallelism(parallelism: str) -> None:
  _raise_first(parallelism_problem(parallelism))


def state_specs(model: nnx.Module, mesh: Mesh, parallelism: str = "towers") -> nnx.State:
  """A PartitionSpec for every leaf of ``nnx.state(model)``: ``P("tower")`` or replicated.

  A parameter is split over ``tower`` when its layer is a tower layer (``TowerConv`` for
  "towers", ``TowerDense`` for both) with more than one tower: its leading axis is the tower
  axis. fc8 (one tower), RNG state and everything else is replicated. ``model`` may be abstract
  (``nnx.eval_shape``).
  """
  return _specs_of(nnx.state(model), _spec_rule(model, mesh, parallelism))


def _spec_rule(model: nnx.Module, mesh: Mesh, parallelism: str) -> Callable[[tuple], P]:
  """The PartitionSpec of the state leaf at a given path of ``model``'s state."""
  check_parallelism(parallelism)
  _check_towers(model, mesh)
  split_types = (towers.TowerDense,) if parallelism == "weird_trick" else (towers.TowerDense, towers.TowerConv)
  split_layers = {
    path for path, module in nnx.iter_modules(model) if isinstance(module, split_types) and module.kernel.shape[0] > 1
  }
  split = mesh.shape[TOWER_AXIS] > 1
  return lambda path: P(TOWER_AXIS) if split and path[:-1] in split_layers else P()


def _specs_of(state: nnx.State, rule: Callable[[tuple], P]) -> nnx.State:
  return nnx.map_state(lambda path, _: rule(path), state)


def state_shardings(model: nnx.Module, mesh: Mesh, parallelism: str = "towers") -> nnx.State:
  """:func:`state_specs` as NamedShardings on ``mesh``."""
  return jax.tree.map(lambda spec: NamedSharding(mesh, spec), state_specs(model, mesh, parallelism))


def create_sharded_model(
  model_factory: Callable[[], nnx.Module], mesh: Mesh, parallelism: str = "towers"
) -> nnx.Module:
  """Builds ``model_factory()`` with every parameter created directly in its place on ``mesh``.

  The initialisers run inside ``jit`` with the target shardings as output shardings, so each
  device only ever materialises its own slices (no full copy on one device first). JAX's random
  bits do not depend on the sharding (``jax_threefry_partitionable``), so every mesh gets the same
  initial values, equal to an eager ``model_factory()`` up to float rounding (~3e-8 here).
  ``model_factory`` must build its own ``nnx.Rngs`` (it is traced, not called eagerly).
  """
  graphdef, abstract_state = nnx.split(nnx.eval_shape(model_factory))
  shardings = state_shardings(nnx.merge(graphdef, abstract_state), mesh, parallelism)
  state = jax.jit(lambda: nnx.state(model_factory()), out_shardings=shardings)()
  return nnx.merge(graphdef, state)


def shard_model(model: nnx.Module, mesh: Mesh, parallelism: str = "towers") -> None:
  """Moves an existing ``model``'s state to its place on ``mesh``, in place (see :func:`state_specs`)."""
  nnx.update(model, jax.device_put(nnx.state(model), state_shardings(model, mesh, parallelism)))


def forward(model: nnx.Module, images: jax.Array, mesh: Mesh, parallelism: str = "towers") -> jax.Array:
  """Logits of ``model`` on ``images`` laid out for ``mesh``; call it inside the jitted step.

  ``tower_parallel=1``: the plain model; XLA splits the batch over ``data`` and reduces the
  gradients. Otherwise one ``shard_map`` over the whole mesh runs :func:`_towers` or
  :func:`_weird_trick` on every device, and the updated RNG state (dropout's counter) is written
  back to ``model``.
  """
  check_parallelism(parallelism)
  if mesh.shape[TOWER_AXIS] == 1:
    return model(images)
  _check_towers(model, mesh)
  if parallelism == "towers":
    return _map_over_mesh(model, mesh, parallelism, _towers, P(DATA_AXIS))(images)
  return _map_over_mesh(model, mesh, parallelism, _weird_trick, P((DATA_AXIS, TOWER_AXIS)))(images)


def _towers(model: nnx.Module, images: jax.Array) -> jax.Array:
  """One device of the 2012 layout: its own tower of every layer, on its ``data`` shard."""
  return model(images, tower_axis=TOWER_AXIS, batch_axis=DATA_AXIS)


def _weird_trick(model: nnx.Module, images: jax.Array) -> jax.Array:
  """One device of the 2014 layout: all conv towers on its own images (data parallelism), then
  its slice of fc6/fc7 on the whole batch of its ``data`` row (model parallelism)."""
  features = jax.lax.all_gather(model.features(images), TOWER_AXIS, axis=0, tiled=True)
  return model.classify(features, tower_axis=TOWER_AXIS, batch_axis=DATA_AXIS)


def _map_over_mesh(
  model: nnx.Module, mesh: Mesh, parallelism: str, body: Callable[[nnx.Module, jax.Array], jax.Array], images_spec: P
) -> Callable[[jax.Array], jax.Array]:
  """``body(local_model, local_images)`` on every device under ``jax.shard_map``.

  Each device gets its own parameter slices (:func:`state_specs`) and its images
  (``images_spec``) and returns the logits of its ``data`` shard, equal on the devices of a
  tower pair (they come after the last exchange). ``check_vma=False`` because ``all_gather``
  results are typed as varying over ``tower``; without the check, shard_map's transpose divides
  a replicated output's cotangent by the number of devices that replicate it and sums the
  replicated inputs' cotangents over them, so fc8's (and every replicated layer's) gradient is
  counted once, and the sum over ``data`` is the data-parallel gradient reduction.
  """
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  rule = _spec_rule(model, mesh, parallelism)
  params_specs, rest_specs = _specs_of(params, rule), _specs_of(rest, rule)

  def local_step(params, rest, images):
    local_model = nnx.merge(graphdef, params, rest)
    logits = body(local_model, images)
    return logits, nnx.state(local_model, nnx.Not(nnx.Param))

  def run(images):
    _raise_first(batch_problem(images.shape[0], mesh.size, mesh.shape[TOWER_AXIS], parallelism))
    logits, new_rest = jax.shard_map(
      local_step,
      mesh=mesh,
      in_specs=(params_specs, rest_specs, images_spec),
      out_specs=(P(DATA_AXIS), rest_specs),
      check_vma=False,
    )(params, rest, images)
    nnx.update(model, new_rest)
    return logits

  return run


def _check_towers(model: nnx.Module, mesh: Mesh) -> None:
  _raise_first(towers_problem(mesh.shape[TOWER_AXIS], getattr(model, "towers", None)))


def input_shard(mesh: Mesh) -> tuple[int, int]:
  """``(index, count)``: this process reads slice ``index`` of ``count`` equal slices of each batch.

  Processes whose devices share a ``data`` row (a tower pair split across two hosts) read the
  same slice; with a tower pair inside each host this is ``(process_index, process_count)``.
  Give it to the input pipeline instead of the raw process index.
  """
  row_owners = [[device.process_index for device in row] for row in mesh.devices]
  return input_shard_of(row_owners, jax.process_index())


def input_shard_of(row_owners: list[list[int]], process: int) -> tuple[int, int]:
  """:func:`input_shard` for the process ids owning each device of each ``data`` row."""
  mine = [i for i, owners in enumerate(row_owners) if process in owners]
  per_process = len(mine)
  if (
    not mine
    or mine != list(range(mine[0], mine[0] + per_process))
    or mine[0] % per_process
    or len(row_owners) % per_process
  ):
    raise ValueError(
      f"process {process} has devices on data rows {mine} of {len(row_owners)}; "
      "each process must hold an aligned, contiguous block of rows"
    )
  return mine[0] // per_process, len(row_owners) // per_process


def global_batch(local_batch: Any, mesh: Mesh) -> Any:
  """One global, ``data``-sharded array per leaf from each process's slice (see :func:`input_shard`).

  On one process this is a ``device_put``; on several, every process passes its own rows and
  ``jax.make_array_from_process_local_data`` assembles the global batch without moving data.
  """
  sharding = batch_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)


def param_bytes_per_device(model: nnx.Module) -> dict[jax.Device, int]:
  """Bytes of ``model``'s parameters stored on each device (its own shards only)."""
  totals: dict[jax.Device, int] = {}
  for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)):
    for shard in leaf.addressable_shards:
      totals[shard.device] = totals.get(shard.device, 0) + shard.data.nbytes
  return totals
