"""Stops training at the first NaN or Inf loss, before a diverged state can be checkpointed.

The step's loss stays on the device until the loop next synchronises (a log, eval or save step),
so watching costs no extra host round trip per step; :meth:`LossWatch.check` then names the first
bad step. Before each save :func:`check_params_finite` also checks the parameters themselves: the
update of the last step may overflow while its loss (computed before the update) was finite.

A divergence before the first save after resuming may instead come from the checkpoint resumed
from (a file corrupted in a way its checksums missed, e.g. before they were written): the
message then names that checkpoint as the suspect, and how to fall back to the one before it.
:class:`Guard` keeps that bookkeeping for the loop.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from alexnet_jax import errors


class DivergedError(errors.UserError, RuntimeError):
  """The loss or the parameters became NaN or Inf; nothing from that point was saved."""


class LossWatch:
  """Collects (step, loss) pairs and checks them in one device fetch."""

  def __init__(self):
    self._pending: list[tuple[int, jax.Array]] = []

  def add(self, step: int, loss: jax.Array) -> None:
    self._pending.append((step, loss))

  def check(self, last_saved_step: int | None, resumed_from: int | None = None) -> None:
    """Raises :class:`DivergedError` at the first non-finite loss since the last check.

    ``resumed_from``: the step this run restored, while nothing has been saved since.
    """
    steps = [step for step, _ in self._pending]
    losses = jax.device_get([loss for _, loss in self._pending])
    self._pending = []
    for step, loss in zip(steps, losses):
      if not np.isfinite(loss):
        raise DivergedError(
          _message(f"the training loss is {float(loss)} at step {step}", last_saved_step, resumed_from)
        )


@jax.jit
def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def check_params_finite(step: int, params, last_saved_step: int | None, resumed_from: int | None = None) -> None:
  if not bool(_all_finite(params)):
    raise DivergedError(_message(f"the parameters hold NaN or Inf after step {step}", last_saved_step, resumed_from))


class Guard:
  """A run's divergence checks and what their message names: the losses not yet checked, the last
  checkpoint saved, and the checkpoint resumed from until the first save after it (the suspect)."""

  def __init__(self, resumed_step: int):
    self._losses = LossWatch()
    self._last_saved = self._suspect = resumed_step or None

  def add_loss(self, step: int, loss: jax.Array) -> None:
    self._losses.add(step, loss)

  def check_losses(self) -> None:
    self._losses.check(self._last_saved, self._suspect)

  def check_params(self, step: int, params) -> None:
    check_params_finite(step, params, self._last_saved, self._suspect)

  def saved(self, step: int) -> None:
    """Records the save of ``step``: the new last good checkpoint; nothing is suspect any more."""
    self._last_saved, self._suspect = step, None


def _message(what: str, last_saved_step: int | None, resumed_from: int | None = None) -> str:
  if resumed_from is not None:
    return (
      f"training diverged: {what}, before any save since this run resumed from the checkpoint of step "
      f"{resumed_from}; stopped without saving it. That checkpoint is the suspect: if this config trained "
      f"past step {resumed_from} before, one of its files is corrupt. Move WORKDIR/checkpoints/{resumed_from} "
      "into WORKDIR/checkpoints/unreadable/ and rerun to resume from the checkpoint before it. If the run "
      "never got further, lower config.optimizer.learning_rate or raise config.schedule.warmup_steps instead "
      "(rerun with --allow_config_change in the same workdir)."
    )
  kept = (
    f"the last good checkpoint (step {last_saved_step}) is kept"
    if last_saved_step is not None
    else "no checkpoint was saved"
  )
  return (
    f"training diverged: {what}; stopped without saving it; {kept}. Lower "
    "config.optimizer.learning_rate or raise config.schedule.warmup_steps and rerun "
    "(with --allow_config_change in the same workdir)."
  )
