"""The benchmark's JAX side: the train step users train with, compiled for one device and one batch.

The step is ``train/steps.py``'s ``train_step`` (forward, loss and metrics, backward, the learning
rate written into the optimizer state, the update) with ``train/optimizers.py``'s "sgd" rule, on a
one-device mesh, its state donated as in training. The PyTorch side (``benchmark_torch.py``) runs
the same SGD, with :data:`LEARNING_RATE`, :data:`MOMENTUM` and :data:`WEIGHT_DECAY` from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import numpy as np
import optax
from flax import nnx

from alexnet_jax.parallel import sharding
from alexnet_jax.train import optimizers, steps
from alexnet_jax.train import state as state_lib
from alexnet_jax.yardsticks.benchmark_report import Side

LEARNING_RATE, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4


def build_jax_side(
  make_model: Callable[[nnx.Rngs], nnx.Module], images: np.ndarray, labels: np.ndarray, name: str = "jax"
) -> tuple[Side, Callable[[], None]]:
  """Compiles the train step for the model ``make_model(rngs)`` builds; returns the Side and a
  function running one step.

  ``make_model`` builds ``alexnet.AlexNet`` or the textbook baseline (``--baseline``), which thereby
  get the same step and compilation.
  """
  mesh = sharding.create_mesh(1, devices=jax.devices()[:1])
  tx = optimizers.make_optimizer("sgd", learning_rate=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
  model_def, train_state = state_lib.init_train_state(make_model, 0, mesh, tx)
  step = steps.jit_train_step(
    model_def=model_def, tx=tx, schedule=optimizers.shared_schedule(optax.constant_schedule(LEARNING_RATE)), mesh=mesh
  )
  batch = sharding.global_batch({"image": images, "label": labels}, mesh)
  start = time.perf_counter()
  compiled = step.lower(train_state, batch).compile()
  side = Side(name, compile_s=time.perf_counter() - start)
  if jax.default_backend() != "cpu":
    side.peak_memory_mb = compiled_memory_mb(compiled)
  holder = [train_state]

  def run_one() -> None:
    holder[0], metrics = compiled(holder[0], batch)
    metrics["loss"].block_until_ready()

  return side, run_one


def compiled_memory_mb(compiled) -> float | None:
  """Device memory the compiled step needs: its arguments, outputs (less donated) and temporaries.

  Read from XLA's buffer assignment, so it belongs to this one executable, unlike the process-wide
  peak in ``memory_stats()``, which cannot be reset between runs.
  """
  analysis = compiled.memory_analysis()
  if analysis is None:
    return None
  total = (
    analysis.argument_size_in_bytes
    + analysis.output_size_in_bytes
    - analysis.alias_size_in_bytes
    + analysis.temp_size_in_bytes
  )
  return total / 2**20
