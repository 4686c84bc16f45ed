"""One process of a multi-process run of a few SGD steps, started by launch/local_multiprocess.py.

Every process builds the same mesh over all processes' devices, creates the model sharded in
place, reads only its own slice of each global batch (``sharding.input_shard``), assembles the
global batch (``sharding.global_batch``) and takes ``--steps`` steps of tests/support/tiny_training.py.
Process 0 writes the initial state, the losses and the final state to ``--out``
(.npz) for tests/test_multihost.py to compare with one process.
"""

import jax
import numpy as np
from absl import app, flags
from flax import nnx
from jax.experimental import multihost_utils

from alexnet_jax.parallel import distributed, sharding
from support import tiny_training  # tests/ is on the PYTHONPATH the launcher gives it

flags.DEFINE_string("coordinator_address", None, "host:port of process 0")
flags.DEFINE_integer("num_processes", None, "number of processes")
flags.DEFINE_integer("process_id", None, "index of this process")
flags.DEFINE_integer("tower_parallel", 2, "devices on the mesh's tower axis")
flags.DEFINE_string("parallelism", "towers", "towers or weird_trick")
flags.DEFINE_integer("steps", 2, "SGD steps")
flags.DEFINE_integer("batch_size", 8, "global batch size")
flags.DEFINE_string("out", None, "where process 0 writes its .npz", required=True)
FLAGS = flags.FLAGS


def gathered_state(model) -> dict:
  """Every parameter and RNG state (keys as raw key data) as a full numpy array, keyed by path."""
  flat = {"/".join(map(str, path)): v.get_value() for path, v in nnx.to_flat_state(nnx.state(model))}
  flat = {
    k: jax.random.key_data(v) if jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key) else v for k, v in flat.items()
  }
  return {k: np.asarray(v) for k, v in multihost_utils.process_allgather(flat, tiled=True).items()}


def main(argv):
  del argv
  distributed.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  mesh = sharding.create_mesh(FLAGS.tower_parallel)
  model = sharding.create_sharded_model(tiny_training.small_model, mesh, FLAGS.parallelism)
  initial = gathered_state(model)
  index, count = sharding.input_shard(mesh)
  rows = FLAGS.batch_size // count
  losses = []
  for step in range(FLAGS.steps):
    full = tiny_training.synthetic_batch(FLAGS.batch_size, seed=step)
    mine = {k: v[index * rows : (index + 1) * rows] for k, v in full.items()}
    batch = sharding.global_batch(mine, mesh)
    loss, _ = tiny_training.jit_sgd_step(model, batch, mesh=mesh, parallelism=FLAGS.parallelism)
    losses.append(float(multihost_utils.process_allgather(loss, tiled=True)))
  final = gathered_state(model)
  if distributed.is_main_process():
    np.savez(
      FLAGS.out,
      losses=np.asarray(losses),
      input_shard=np.asarray([index, count]),
      **{"initial/" + k: v for k, v in initial.items()},
      **{"final/" + k: v for k, v in final.items()},
    )


if __name__ == "__main__":
  app.run(main)
