"""The mesh, parameter placement, communication pattern and numerics of the sharded train step.

Runs on the 4 fake CPU devices of tests/conftest.py. Every sharded layout takes two SGD steps
(dropout on) from the same initial state as a one-device reference and must match it in loss,
gradients and parameters; the compiled HLO of the same steps must hold cross-tower collectives
only at the paper's exchanges and in the gradient reduction.
"""

import re

import jax
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P
from support import tiny_training

from alexnet_jax.model import alexnet
from alexnet_jax.parallel import sharding

BATCH = 8
STEPS = 2
TOLERANCE = dict(rtol=1e-5, atol=1e-5)
LAYOUTS = [("towers", 2), ("weird_trick", 2), ("towers", 1)]  # (parallelism, tower_parallel)


def test_mesh_axes_and_tower_pairs():
  mesh = sharding.create_mesh(2)
  assert dict(mesh.shape) == {"data": 2, "tower": 2}
  devices = jax.devices()
  assert [list(row) for row in mesh.devices] == [devices[:2], devices[2:]]  # pairs are neighbours
  assert dict(sharding.create_mesh(1).shape) == {"data": 4, "tower": 1}


@pytest.mark.parametrize("tower_parallel", [0, 3, 2.0])
def test_mesh_rejects_bad_tower_parallel(tower_parallel):
  with pytest.raises(ValueError, match=f"tower_parallel={tower_parallel}"):
    sharding.create_mesh(tower_parallel)


def test_bad_parallelism_and_tower_count_are_named():
  mesh = sharding.create_mesh(2)
  abstract = nnx.eval_shape(tiny_training.small_model)
  with pytest.raises(ValueError, match="parallelism='pipeline'.*'towers', 'weird_trick'"):
    sharding.state_specs(abstract, mesh, "pipeline")
  one_tower = nnx.eval_shape(lambda: tiny_training.small_model(towers=1))
  with pytest.raises(ValueError, match="tower_parallel=2.*model.towers=1"):
    sharding.state_specs(one_tower, mesh)
  images = jax.ShapeDtypeStruct((6, tiny_training.INPUT_SIZE, tiny_training.INPUT_SIZE, 3), np.float32)
  with pytest.raises(ValueError, match="batch_size=6 must be divisible by 4"):
    sharding.forward(abstract, images, mesh, "weird_trick")


@pytest.fixture(scope="module")
def initial_model():
  """The trainer's path: parameters created in place on the 2x2 (data, tower) mesh."""
  return sharding.create_sharded_model(tiny_training.small_model, sharding.create_mesh(2))


def _flat(state) -> dict:
  """{path: array} of an nnx State."""
  return {path: leaf.get_value() for path, leaf in nnx.to_flat_state(state)}


def _layer_param_bytes(model, names):
  return sum(v.nbytes for path, v in _flat(nnx.state(model, nnx.Param)).items() if path[0] in names)


def test_parameters_are_created_in_their_place(initial_model):
  """tower_parallel=2: each device holds its tower's half of conv1-conv5, fc6, fc7, and fc8 whole."""
  for path, value in _flat(nnx.state(initial_model, nnx.Param)).items():
    towered = path[0] != "fc8"
    assert value.sharding.spec == (P("tower") if towered else P()), path
    shard_shapes = {shard.data.shape for shard in value.addressable_shards}
    assert shard_shapes == {((1,) if towered else value.shape[:1]) + value.shape[1:]}, path
  towered_bytes = _layer_param_bytes(initial_model, ("convs", "fc6", "fc7"))
  fc8_bytes = _layer_param_bytes(initial_model, ("fc8",))
  per_device = sharding.param_bytes_per_device(initial_model)
  assert set(per_device) == set(jax.devices())
  assert set(per_device.values()) == {towered_bytes // 2 + fc8_bytes}


def test_weird_trick_splits_only_the_fc_layers(initial_model):
  model = nnx.clone(initial_model)
  sharding.shard_model(model, sharding.create_mesh(2), "weird_trick")
  for path, value in _flat(nnx.state(model, nnx.Param)).items():
    assert value.sharding.spec == (P("tower") if path[0] in ("fc6", "fc7") else P()), path


def _train(initial_model, mesh, parallelism):
  """STEPS SGD steps from a copy of ``initial_model`` placed on ``mesh``; numpy results + HLO text."""
  model = nnx.clone(initial_model)
  sharding.shard_model(model, mesh, parallelism)
  losses, grads = [], []
  for step in range(STEPS):
    batch = sharding.global_batch(tiny_training.synthetic_batch(BATCH, seed=step), mesh)
    loss, step_grads = tiny_training.jit_sgd_step(model, batch, mesh=mesh, parallelism=parallelism)
    losses.append(float(loss))
    grads.append(_numpy(step_grads))
  hlo = tiny_training.jit_sgd_step.lower(model, batch, mesh=mesh, parallelism=parallelism).compile().as_text()
  return {
    "losses": losses,
    "grads": grads,
    "params": _numpy(nnx.state(model, nnx.Param)),
    "rng": _numpy(nnx.state(model, nnx.RngState)),
    "hlo": hlo,
    "mesh": mesh,
    "parallelism": parallelism,
    "model": model,
  }


def _numpy(state) -> dict:
  return {
    path: np.asarray(jax.random.key_data(v) if jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key) else v)
    for path, v in _flat(state).items()
  }


@pytest.fixture(scope="module")
def reference(initial_model):
  return _train(initial_model, sharding.create_mesh(1, devices=jax.devices()[:1]), "towers")


@pytest.fixture(scope="module", params=LAYOUTS, ids=[f"{p}-tp{t}" for p, t in LAYOUTS])
def layout_run(request, initial_model):
  parallelism, tower_parallel = request.param
  return _train(initial_model, sharding.create_mesh(tower_parallel), parallelism)


def test_sharded_step_matches_one_device(layout_run, reference):
  """Loss, every gradient (fc8's too: replicated, so not double counted) and the updated
  parameters of two steps with dropout on equal the single-device model's."""
  np.testing.assert_allclose(layout_run["losses"], reference["losses"], **TOLERANCE)
  for step in range(STEPS):
    for path, want in reference["grads"][step].items():
      np.testing.assert_allclose(
        layout_run["grads"][step][path], want, **TOLERANCE, err_msg=f"gradient of {path} at step {step}"
      )
  for path, want in reference["params"].items():
    np.testing.assert_allclose(layout_run["params"][path], want, **TOLERANCE, err_msg=f"param {path}")


def test_dropout_drew_masks_and_rng_state_comes_back(layout_run, reference, initial_model):
  """Guards the test above: both dropout layers drew one mask per step (train mode), and the
  sharded step wrote the advanced RNG counters back to the model just as one device does."""
  counts = {path: v for path, v in reference["rng"].items() if path[-1] == "count"}
  assert len(counts) == 2 and all(v == STEPS for v in counts.values()), counts
  assert initial_model.dropout6.dropout.rate == 0.5
  for path, want in reference["rng"].items():
    np.testing.assert_array_equal(layout_run["rng"][path], want, err_msg=str(path))


# ---- The communication pattern, read from the compiled HLO ----------------------------------

_COLLECTIVE = re.compile(
  r"^\s*(?:ROOT )?%\S+ = (?P<type>\(.*?\)|\S+) (?P<kind>all-gather|all-reduce|reduce-scatter|"
  r"all-to-all|collective-permute|collective-broadcast)(?:-start)?\(.*replica_groups="
  r"(?P<groups>\{[{}\d,]*\}|\[[\d,]+\]<=\[[\d,]+\](?:T\([\d,]+\))?|mesh\[[^\]]*\] \{[^}]*\})"
)


def _collectives(hlo: str, num_devices: int) -> list[tuple[str, list[tuple[int, ...]], frozenset]]:
  """(kind, result shapes, replica groups) of every collective in an HLO module's text."""
  found = []
  for line in hlo.splitlines():
    match = _COLLECTIVE.match(line)
    if match:
      shapes = [tuple(int(d) for d in dims.split(",") if d) for dims in re.findall(r"\w+\[([\d,]*)\]", match["type"])]
      found.append((match["kind"], shapes, _replica_groups(match["groups"], num_devices)))
  return found


def _replica_groups(text: str, num_devices: int) -> frozenset:
  """Replica groups in any HLO spelling, as a set of sets of device ids: {{0,1},{2,3}}, {} (all),
  the iota form [2,2]<=[2,2]T(1,0), or the named form mesh['axis_0'=4,'axis_1'=1] {'axis_0'}."""
  if text == "{}":
    return frozenset([frozenset(range(num_devices))])
  if text.startswith("{"):
    return frozenset(frozenset(int(i) for i in g.split(",")) for g in re.findall(r"\{([\d,]+)\}", text))
  if text.startswith("mesh"):
    axes, grouped = text.split("] ")
    sizes = [int(size) for _, size in re.findall(r"'(\w+)'=(\d+)", axes)]
    names = [name for name, _ in re.findall(r"'(\w+)'=(\d+)", axes)]
    inner = [names.index(name) for name in re.findall(r"'(\w+)'", grouped)]
    outer = [i for i in range(len(names)) if i not in inner]
    ids = np.arange(num_devices).reshape(sizes).transpose(outer + inner)
    return frozenset(frozenset(g) for g in ids.reshape(-1, int(np.prod([sizes[i] for i in inner]))).tolist())
  shape, dims, perm = re.fullmatch(r"\[([\d,]+)\]<=\[([\d,]+)\](?:T\(([\d,]+)\))?", text).groups()
  ids = np.arange(np.prod([int(d) for d in dims.split(",")])).reshape([int(d) for d in dims.split(",")])
  if perm:
    ids = ids.transpose([int(p) for p in perm.split(",")])
  return frozenset(frozenset(row) for row in ids.reshape([int(d) for d in shape.split(",")]).tolist())


def _mesh_groups(mesh):
  ids = np.arange(mesh.devices.size).reshape(mesh.devices.shape)
  towers = frozenset(frozenset(row) for row in ids.tolist())
  data = frozenset(frozenset(col) for col in ids.T.tolist())
  return towers, data, frozenset([frozenset(ids.ravel().tolist())])


def _exchanges(model, parallelism, rows):
  """Shapes at the towers' meeting points on one device: (gathered, own slice) per exchange."""
  towers = model.fc6.kernel.shape[0]
  sizes = alexnet.feature_map_sizes(tiny_training.INPUT_SIZE)
  conv2_out, conv5_out = (towers * model.convs[i].kernel.shape[-1] for i in (1, 4))
  fc6_out, fc7_out = (towers * layer.kernel.shape[-1] for layer in (model.fc6, model.fc7))
  fc_inputs = [((rows, fc6_out), (rows, fc6_out // towers)), ((rows, fc7_out), (rows, fc7_out // towers))]
  if parallelism == "weird_trick":  # conv features gathered over the batch, then the FC exchanges
    flat = sizes["pool5"] ** 2 * conv5_out
    return [((rows, flat), (rows // towers, flat))] + fc_inputs
  return [
    ((rows, sizes["pool2"], sizes["pool2"], conv2_out), (rows, sizes["pool2"], sizes["pool2"], conv2_out // towers)),
    ((rows, sizes["pool5"], sizes["pool5"], conv5_out), (rows, sizes["pool5"], sizes["pool5"], conv5_out // towers)),
  ] + fc_inputs


def test_cross_tower_traffic_only_at_exchanges_and_gradient_reduction(layout_run):
  """The compiled train step: all-gathers (forward) and reduce-scatters (their transposes) run
  within tower pairs on exactly the exchanged activations; all-reduces carry gradients (and the
  loss): over ``data`` within a tower column, or across towers only for replicated parameters.
  Under pure data parallelism there are only gradient all-reduces."""
  mesh, parallelism, model = layout_run["mesh"], layout_run["parallelism"], layout_run["model"]
  collectives = _collectives(layout_run["hlo"], mesh.devices.size)
  tower_pairs, data_columns, everyone = _mesh_groups(mesh)
  specs = _flat_specs(sharding.state_specs(model, mesh, parallelism))
  params = _flat(nnx.state(model, nnx.Param))
  # A gradient may be reduced whole, per tower slice, with the local towers side by side (an
  # across-tower conv runs them as one: towers.TowerConv) or transposed: compare shapes up to that.
  local_param_shapes = (
    {_dims(v.shape[1:]) for p, v in params.items()}
    | {_dims((*v.shape[1:-1], v.shape[0] * v.shape[-1])) for p, v in params.items()}
    | {_dims(v.shape) for p, v in params.items() if specs[p] == P()}
  )
  replicated_shapes = {_dims(v.shape[s:]) for p, v in params.items() if specs[p] == P() for s in (0, 1)}

  reductions = [(shapes, groups) for kind, shapes, groups in collectives if kind == "all-reduce"]
  for shapes, groups in reductions:
    if groups == data_columns:  # the data-parallel gradient reduction (and the mean loss)
      assert {_dims(s) for s in shapes} <= local_param_shapes | {()}, shapes
    else:  # crossing towers: only gradients of parameters every device holds whole
      assert groups in (everyone, tower_pairs), groups
      assert {_dims(s) for s in shapes} <= replicated_shapes | {()}, shapes
  if mesh.shape["tower"] == 1:
    assert {kind for kind, _, _ in collectives} == {"all-reduce"}
    return
  assert {kind for kind, _, _ in collectives} == {"all-gather", "reduce-scatter", "all-reduce"}
  exchanges = _exchanges(model, parallelism, rows=BATCH // mesh.shape["data"])
  gathers = [(shapes[0], groups) for kind, shapes, groups in collectives if kind == "all-gather"]
  scatters = [(shapes[0], groups) for kind, shapes, groups in collectives if kind == "reduce-scatter"]
  assert {groups for _, groups in gathers + scatters} == {tower_pairs}
  assert {shape for shape, _ in gathers} == {gathered for gathered, _ in exchanges}
  assert {shape for shape, _ in scatters} == {own for _, own in exchanges}


def _dims(shape) -> tuple[int, ...]:
  """A shape up to layout: its dimensions other than 1, sorted."""
  return tuple(sorted(d for d in shape if d != 1))


def _flat_specs(specs) -> dict:
  return dict(nnx.to_flat_state(specs))


# ---- Several processes feeding one batch ----------------------------------------------------


def test_single_process_reads_the_whole_batch():
  mesh = sharding.create_mesh(2)
  assert sharding.input_shard(mesh) == (0, 1)
  batch = sharding.global_batch(tiny_training.synthetic_batch(BATCH), mesh)
  assert batch["image"].sharding == sharding.batch_sharding(mesh)
  assert batch["label"].shape == (BATCH,)


@pytest.mark.parametrize(
  "row_owners,expected",
  [
    ([[0, 0], [1, 1]], [(0, 2), (1, 2)]),  # a tower pair per host: one slice each
    ([[0, 1]], [(0, 1), (0, 1)]),  # one pair across two hosts: same slice
    ([[0, 1], [2, 3]], [(0, 2), (0, 2), (1, 2), (1, 2)]),  # one GPU per process (SLURM), pairs
    ([[0, 0], [0, 0], [1, 1], [1, 1]], [(0, 2), (1, 2)]),  # two rows per host
  ],
)
def test_input_shard_follows_the_data_rows(row_owners, expected):
  assert [sharding.input_shard_of(row_owners, p) for p in range(len(expected))] == expected


def test_input_shard_rejects_interleaved_rows():
  with pytest.raises(ValueError, match="rows \\[0, 2\\] of 4"):
    sharding.input_shard_of([[0], [1], [0], [1]], 0)
