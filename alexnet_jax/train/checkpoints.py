"""Checkpoints under ``WORKDIR/checkpoints`` with orbax: the whole train state plus a JSON record.

Each checkpoint holds two items:

* ``state`` -- the train state pytree (step, parameters, optimizer state with the learning rate
  in use, the plateau record, the dropout RNG key), restored onto the same shardings it had;
* ``meta`` -- JSON bookkeeping: the input position (the number of batches consumed, from which the
  deterministic input pipeline restarts), the accumulated wall time and the evaluation history.

Saving is asynchronous; :meth:`Checkpointer.close` waits for the last save before the process exits.

Crash safety comes from orbax: a checkpoint is written under a temporary name and renamed to its
step number only when complete, so a process killed mid-save leaves a temporary directory
(``STEP.orbax-checkpoint-tmp-*``) that is never listed as a step, so never restored. A complete
checkpoint that cannot be read back (a truncated or corrupted file) is skipped with a warning by :meth:`restore_latest`,
which falls back to the newest readable one; if none is readable it refuses to start over.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging

UNREADABLE_DIR = "unreadable"  # where unreadable checkpoints are moved, inside the checkpoint dir
CHECKPOINT_DIR = "checkpoints"  # inside a work directory


def checkpoint_dir(workdir: str) -> str:
  """Where a run in ``workdir`` keeps its checkpoints."""
  return os.path.join(workdir, CHECKPOINT_DIR)


class CheckpointError(RuntimeError):
  """The work directory has checkpoints but none of them can be read."""


class Checkpointer:
  """Saves every ``every_steps`` steps (and when forced), keeps the newest ``keep``."""

  def __init__(self, directory: str, *, keep: int, every_steps: int, read_only: bool = False):
    """``read_only`` (for commands that use a run, not train it): nothing is created, cleaned up
    or saved, so a run still training in ``directory`` is left alone."""
    self._every_steps = every_steps
    self._directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=not read_only, cleanup_tmp_directories=not read_only, read_only=read_only
    )
    self._manager = ocp.CheckpointManager(self._directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def is_save_step(self, step: int) -> bool:
    return step % self._every_steps == 0

  def save(self, step: int, state: Any, meta: dict, *, force: bool = False) -> bool:
    """Starts saving ``state`` and ``meta`` at ``step`` if it is a save step (or ``force``)."""
    if not (force or self.is_save_step(step)):
      return False
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    return self._manager.save(step, args=args, force=True)

  def restore_latest(self, template: Any) -> tuple[Any, dict]:
    """The newest readable checkpoint's (state, meta), laid out like ``template``.

    ``(template, {})`` if there is no checkpoint. Newer checkpoints that fail to read are logged
    and moved to ``unreadable/`` (so that this step can be saved again); if every checkpoint
    fails, :class:`CheckpointError` is raised and nothing is moved.
    """
    steps = sorted(self._manager.all_steps(), reverse=True)
    failures = []
    for step in steps:
      try:
        restored = self._restore(step, template)
      except Exception as error:  # noqa: BLE001 -- any read failure means: try the previous one
        message = _one_line(error)
        logging.warning(
          "Checkpoint at step %d in %s cannot be read (%s); trying the previous one", step, self._directory, message
        )
        failures.append((step, message))
        continue
      self._set_aside([failed for failed, _ in failures])
      return restored
    if failures:
      listing = "; ".join(f"step {step}: {message}" for step, message in failures)
      raise CheckpointError(
        f"{self._directory} holds checkpoints but none can be read ({listing}). Refusing to "
        "start from scratch over an existing run: restore the files, or move the work "
        "directory away to start a new run."
      )
    return template, {}

  def restore(self, step: int, template: Any) -> tuple[Any, dict]:
    """The (state, meta) of the checkpoint at ``step``, laid out like ``template``; moves nothing.

    Raises :class:`CheckpointError` naming the steps there are if ``step`` has no checkpoint, or
    saying why it cannot be read.
    """
    if step not in self._manager.all_steps():
      steps = ", ".join(map(str, self.all_steps())) or "none"
      raise CheckpointError(f"{self._directory} has no checkpoint of step {step} (steps there: {steps})")
    try:
      return self._restore(step, template)
    except Exception as error:  # noqa: BLE001 -- any read failure is reported as one line
      raise CheckpointError(
        f"the checkpoint of step {step} in {self._directory} cannot be read ({_one_line(error)})"
      ) from error

  def _restore(self, step: int, template: Any) -> tuple[Any, dict]:
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), template)
    restored = self._manager.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
    )
    return restored.state, dict(restored.meta)

  def _set_aside(self, steps: list[int]) -> None:
    """Moves unreadable checkpoints out of the step list, keeping their files for inspection."""
    if not steps:
      return
    target = os.path.join(self._directory, UNREADABLE_DIR)
    os.makedirs(target, exist_ok=True)
    for step in steps:
      destination = os.path.join(target, str(step))
      shutil.rmtree(destination, ignore_errors=True)
      os.replace(os.path.join(self._directory, str(step)), destination)
      logging.warning("Moved the unreadable checkpoint of step %d to %s", step, destination)
    self._manager.reload()

  def close(self) -> None:
    """Waits for pending saves to finish, then releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()


def _one_line(error: Exception) -> str:
  """``Type: first line of the message``."""
  return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
