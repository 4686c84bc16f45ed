"""Checkpoints of a few steps with recognisable contents, for the tests of reading them back."""

import numpy as np

from alexnet_jax.train import checkpoints


def save_steps(directory, steps):
  """Saves ``steps`` into ``directory``; step s holds 64 float32 values equal to s."""
  checkpointer = checkpoints.Checkpointer(directory, keep=5, every_steps=1)
  for step in steps:
    checkpointer.save(step, {"w": np.full(64, step, np.float32)}, {"input_position": step})
  checkpointer.close()
