"""Two processes on this machine, joined by JAX's distributed runtime, train like one process.

launch/local_multiprocess.py starts two copies of tests/support/multihost_steps.py (localhost
coordinator, gloo collectives on CPU). Each process creates the model sharded across both
processes, reads only its own slice of each batch and takes SGD steps with dropout on. Their
losses and final parameters must equal one process taking the same steps on one device from the
same initial state.
"""

import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from support import tiny_training

from alexnet_jax.parallel import sharding

REPO = Path(__file__).resolve().parent.parent
STEPS = 2
BATCH = 8


def _run_two_processes(tmp_path, devices_per_process, tower_parallel, parallelism) -> dict:
  out = tmp_path / "result.npz"
  worker = [
    sys.executable,
    str(REPO / "tests" / "support" / "multihost_steps.py"),
    f"--out={out}",
    f"--tower_parallel={tower_parallel}",
    f"--parallelism={parallelism}",
    f"--steps={STEPS}",
    f"--batch_size={BATCH}",
  ]
  launcher = [
    sys.executable,
    str(REPO / "launch" / "local_multiprocess.py"),
    "--num_processes=2",
    f"--cpu_devices_per_process={devices_per_process}",
    "--timeout=280",
    "--",
  ]
  # LLVM optimisation off in the workers: they compile ~3x faster, and their numbers stay within
  # 1e-7 of an optimised build here (the reference below is computed optimised).
  xla_flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0"
  env = {**os.environ, "XLA_FLAGS": xla_flags, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
  done = subprocess.run(launcher + worker, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-4000:]
  return dict(np.load(out))


def _model_from(result: dict, prefix: str) -> nnx.Module:
  """The small model with the state (parameters and RNG) the processes wrote under ``prefix``."""
  graphdef, state = nnx.split(nnx.eval_shape(tiny_training.small_model))
  for path, variable in nnx.to_flat_state(state):
    value = jax.numpy.asarray(result[prefix + "/".join(map(str, path))])
    is_key = jax.dtypes.issubdtype(variable.get_value().dtype, jax.dtypes.prng_key)
    variable.set_value(jax.random.wrap_key_data(value) if is_key else value)
  return nnx.merge(graphdef, state)


def _one_device_steps(model: nnx.Module) -> list[float]:
  """STEPS single-device SGD steps on the batches the processes shared out."""
  mesh = sharding.create_mesh(1, devices=jax.devices()[:1])
  sharding.shard_model(model, mesh)
  losses = []
  for step in range(STEPS):
    batch = sharding.global_batch(tiny_training.synthetic_batch(BATCH, seed=step), mesh)
    loss, _ = tiny_training.jit_sgd_step(model, batch, mesh=mesh, parallelism="towers")
    losses.append(float(loss))
  return losses


@pytest.mark.slow
@pytest.mark.parametrize(
  "devices_per_process,tower_parallel,parallelism,input_shard",
  [
    (2, 2, "towers", [0, 2]),  # a tower pair inside each process; the processes split each batch
    (1, 2, "towers", [0, 1]),  # one device per process (as under SLURM): the pair spans both
  ],
  ids=["pair-per-process", "pair-across-processes"],
)
def test_two_processes_train_like_one(tmp_path, devices_per_process, tower_parallel, parallelism, input_shard):
  result = _run_two_processes(tmp_path, devices_per_process, tower_parallel, parallelism)
  assert result["input_shard"].tolist() == input_shard
  model = _model_from(result, "initial/")
  np.testing.assert_allclose(result["losses"], _one_device_steps(model), rtol=1e-5, atol=1e-5)
  final = _model_from(result, "final/")
  for (path, want), (_, got) in zip(nnx.to_flat_state(nnx.state(model)), nnx.to_flat_state(nnx.state(final))):
    want, got = want.get_value(), got.get_value()
    if jax.dtypes.issubdtype(want.dtype, jax.dtypes.prng_key):
      want, got = jax.random.key_data(want), jax.random.key_data(got)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=str(path))


def _main(*args, processes=1, timeout=280):
  """``python -m alexnet_jax.main`` on the mock datasets, as one process or as ``processes`` joined ones."""
  from support import mock_inputs

  command = [sys.executable, "-m", "alexnet_jax.main", *args]
  if processes > 1:
    launcher = [sys.executable, str(REPO / "launch" / "local_multiprocess.py"), f"--num_processes={processes}"]
    command = [*launcher, "--cpu_devices_per_process=1", f"--timeout={timeout - 20}", "--", *command]
  with mock_inputs.mock_data():  # TFDS_DATA_DIR, inherited by the commands
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))
  assert done.returncode == 0, done.stderr[-4000:]


def _final_params(workdir, step) -> dict:
  import orbax.checkpoint as ocp

  restored = ocp.StandardCheckpointer().restore(os.path.join(workdir, "checkpoints", str(step), "state"))
  return restored["params"]


@pytest.mark.slow
def test_a_run_of_two_processes_resumes_as_one_on_the_same_global_batches(tmp_path):
  """The global batch stream does not depend on the process count: two processes train 2 steps,
  one process resumes them to 4, and the result equals one process training 4 steps."""
  common = (
    "--config=experiments/fashion_mnist.py:smoke",
    "--config.schedule.name=constant",  # the same learning rates whatever num_train_steps says
    "--config.checkpoint_every_steps=2",
    "--config.eval_every_steps=100",
  )
  split, straight = str(tmp_path / "split"), str(tmp_path / "straight")
  _main(f"--workdir={split}", *common, "--config.num_train_steps=2", processes=2)
  _main(f"--workdir={split}", *common, "--config.num_train_steps=4", "--allow_config_change")
  _main(f"--workdir={straight}", *common, "--config.num_train_steps=4")
  jax.tree.map(
    lambda got, want: np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6),
    _final_params(split, 4),
    _final_params(straight, 4),
  )
