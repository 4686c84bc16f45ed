"""A small AlexNet, a synthetic batch and a plain SGD step for the sharding tests.

Shared by tests/test_sharding.py and the multi-process worker (tests/support/multihost_steps.py), so the
sharded runs and their single-device references take exactly the same step. The step only uses
the public sharding API the trainer uses (``forward``), never a mesh-specific branch.
"""

import jax
import numpy as np
import optax
from flax import nnx

from alexnet_jax.model import alexnet
from alexnet_jax.parallel import sharding

INPUT_SIZE = 67
NUM_CLASSES = 10
LEARNING_RATE = 0.05


def small_model(towers: int = 2, dropout_rate: float = 0.5, seed: int = 0) -> alexnet.AlexNet:
  """AlexNet at width 1/8 on 67x67 inputs: every layer, LRN and dropout, compiled in seconds."""
  return alexnet.AlexNet(
    NUM_CLASSES,
    towers=towers,
    width=0.125,
    input_size=INPUT_SIZE,
    dropout_rate=dropout_rate,
    init="he",
    rngs=nnx.Rngs(params=seed, dropout=seed + 1),
  )


def synthetic_batch(batch_size: int, seed: int = 0) -> dict:
  """Images in [-1, 1] and integer labels, as numpy (what an input pipeline hands over)."""
  rng = np.random.default_rng(seed)
  return {
    "image": rng.uniform(-1, 1, (batch_size, INPUT_SIZE, INPUT_SIZE, 3)).astype(np.float32),
    "label": rng.integers(0, NUM_CLASSES, batch_size).astype(np.int32),
  }


def loss_fn(model, batch, mesh, parallelism):
  logits = sharding.forward(model, batch["image"], mesh, parallelism)
  return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()


def sgd_step(model, batch, mesh, parallelism="towers"):
  """One step of plain SGD on the mean cross-entropy; returns (loss, gradients)."""
  loss, grads = nnx.value_and_grad(loss_fn)(model, batch, mesh, parallelism)
  params = nnx.state(model, nnx.Param)
  nnx.update(model, jax.tree.map(lambda p, g: p - LEARNING_RATE * g, params, grads))
  return loss, grads


jit_sgd_step = nnx.jit(sgd_step, static_argnames=("mesh", "parallelism"))
