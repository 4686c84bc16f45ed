"""Checkpoints under ``WORKDIR/checkpoints`` with orbax: the whole train state plus a JSON record.

Each checkpoint holds two items:

* ``state`` -- the train state pytree (step, parameters, optimizer state with the learning rate
  in use, the plateau record, the dropout RNG key), restored onto the same shardings it had;
* ``meta`` -- JSON bookkeeping: the input position (the number of batches consumed, from which the
  deterministic input pipeline restarts), the accumulated wall time and the evaluation history.

Saving is asynchronous; :meth:`Checkpointer.close` waits for the last save before the process exits.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves every ``every_steps`` steps (and when forced), keeps the newest ``keep``."""

  def __init__(self, directory: str, *, keep: int, every_steps: int):
    self._every_steps = every_steps
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    self._manager = ocp.CheckpointManager(os.path.abspath(directory), options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, meta: dict, *, force: bool = False) -> bool:
    """Starts saving ``state`` and ``meta`` at ``step`` if it is a save step (or ``force``)."""
    if not (force or step % self._every_steps == 0):
      return False
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    return self._manager.save(step, args=args, force=True)

  def restore_latest(self, template: Any) -> tuple[Any, dict]:
    """The newest checkpoint's (state, meta), laid out like ``template``; ``(template, {})`` if none."""
    step = self._manager.latest_step()
    if step is None:
      return template, {}
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), template)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    return restored.state, dict(restored.meta)

  def close(self) -> None:
    """Waits for pending saves to finish, then releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()
