"""Checkpoints under ``WORKDIR/checkpoints`` with orbax: the whole train state plus a JSON record.

Each checkpoint holds two items:

* ``state`` -- the train state pytree (step, parameters, optimizer state with the learning rate
  in use, the plateau record, the dropout RNG key), restored onto the same shardings it had;
* ``meta`` -- JSON bookkeeping, a :class:`ResumeRecord`: the input position (the number of batches
  consumed, from which the deterministic input pipeline restarts), the accumulated wall time, the
  evaluation history, the plateau rule's drops and the last training metrics.

Saving is asynchronous; :meth:`Checkpointer.close` waits for the last save before the process exits.
A save that fails (a full disk, a directory made read-only) raises :class:`CheckpointError` at the
next save or at close, naming the last checkpoint that is complete.

Crash safety comes from orbax: a checkpoint is written under a temporary name and renamed to its
step number only when complete, so a process killed mid-save leaves a temporary directory
(``STEP.orbax-checkpoint-tmp-*``) that is never listed as a step, so never restored. A complete
checkpoint that cannot be read back (a truncated or corrupted file) is skipped with a warning by :meth:`restore_latest`,
which falls back to the newest readable one; if none is readable it refuses to start over.

Integrity: orbax does not notice a flipped bit (it restores wrong values silently). Each step
directory therefore holds ``sha256sums.txt`` (``sha256sum`` format: ``cd checkpoints/STEP &&
sha256sum -c sha256sums.txt`` checks it by hand), a digest of each of its files. It is written into
the temporary directory after the data and before orbax renames it to the step number, so every
listed step has it. Only orbax's commit record (``_CHECKPOINT_METADATA``, ``commit_success.txt`` at
the top, rewritten by that rename) is left out. A mismatch, a missing or an unlisted file makes the
checkpoint unreadable, and so does a missing file where the run's other checkpoints have one (a deleted
checksum file does not make a damaged checkpoint readable); only a run saved entirely by a version
before checksums restores unverified. A checkpoint folder whose name is not the step stored in it
(folders renamed or swapped by hand) is unreadable too.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import glob
import hashlib
import logging as pylogging
import os
import re
import shutil
import sys
import traceback
from collections.abc import Mapping
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging

from alexnet_jax import errors, utils

UNREADABLE_DIR = "unreadable"  # where unreadable checkpoints are moved, inside the checkpoint dir
CHECKSUMS_FILE = "sha256sums.txt"
# Top-level files of a step that orbax rewrites or adds when it commits the step (after our digest).
_COMMIT_RECORD = ("_CHECKPOINT_METADATA", "commit_success.txt")
CHECKPOINT_DIR = "checkpoints"  # inside a work directory
_READ_ONLY_NOTICE = re.compile(r"read[ _]only", re.IGNORECASE)  # orbax on a directory a reader opened read-only


def checkpoint_dir(workdir: str) -> str:
  """Where a run in ``workdir`` keeps its checkpoints."""
  return os.path.join(workdir, CHECKPOINT_DIR)


@dataclasses.dataclass(frozen=True)
class ResumeRecord:
  """What a resume needs besides the train state: the checkpoint's ``meta`` item, typed.

  ``input_position`` is the number of batches consumed (the input pipeline restarts there);
  ``wall_seconds`` the training time spent up to the save; ``eval_history`` and ``lr_drops`` the
  evaluations and plateau drops so far (``summary.json`` lists them whole); ``train_metrics`` the last
  logged training averages (the summary's ``train_*`` when the run ends without logging again).
  """

  input_position: int
  eval_history: tuple[dict, ...] = ()
  lr_drops: tuple[dict, ...] = ()
  wall_seconds: float = 0.0
  train_metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)

  @classmethod
  def from_dict(cls, meta: Mapping[str, Any], *, step: int) -> ResumeRecord:
    """The record stored as ``meta`` in the checkpoint of ``step``; the keys an older version did not
    store take their defaults (the input position: ``step``, one batch per step)."""
    return cls(
      input_position=int(meta.get("input_position", step)),
      eval_history=tuple(meta.get("eval_history", ())),
      lr_drops=tuple(meta.get("lr_drops", ())),
      wall_seconds=float(meta.get("wall_seconds", 0.0)),
      train_metrics=dict(meta.get("train_metrics", {})),
    )

  def to_dict(self) -> dict[str, Any]:
    """The JSON data stored as the checkpoint's ``meta`` item."""
    return {
      "input_position": self.input_position,
      "eval_history": list(self.eval_history),
      "lr_drops": list(self.lr_drops),
      "wall_seconds": self.wall_seconds,
      "train_metrics": dict(self.train_metrics),
    }


class CheckpointError(errors.UserError, RuntimeError):
  """The work directory has checkpoints but none of them can be read."""


class SaveError(CheckpointError):
  """A checkpoint could not be saved; the complete ones before it are kept."""


class Checkpointer:
  """Saves every ``every_steps`` steps (and when forced), keeps the newest ``keep``."""

  def __init__(
    self, directory: str, *, keep: int, every_steps: int, read_only: bool = False, write_checksums: bool = True
  ):
    """``read_only`` (for commands that use a run, not train it): nothing is created, cleaned up
    or saved, so a run still training in ``directory`` is left alone. ``write_checksums``: only
    process 0 of a multi-process run writes them."""
    self._every_steps = every_steps
    self._directory = os.path.abspath(directory)
    self._saving = collections.deque()  # steps whose save has started and not been sealed yet
    self._started = collections.deque(maxlen=4)  # the latest steps whose save started
    self._write_checksums = write_checksums
    options = ocp.CheckpointManagerOptions(
      max_to_keep=keep,
      create=not read_only,
      cleanup_tmp_directories=not read_only,
      read_only=read_only,
      async_options=ocp.AsyncOptions(post_finalization_callback=self._seal),
    )
    self._manager = ocp.CheckpointManager(self._directory, options=options)
    _quiet_closed_event_loops()

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
    self._saving.append(step)
    self._started.append(step)
    try:
      started = self._manager.save(step, args=args, force=True)
    except Exception as error:  # noqa: BLE001 -- this save, or the previous one still in flight, failed
      raise self._save_failed(error) from error
    if not started:
      self._saving.remove(step)
    return started

  def _seal(self) -> None:
    """orbax's post-finalization callback: digests of the step's files, into its temporary directory."""
    step = self._saving[0]  # left in place if this fails, so that the error names its step
    if self._write_checksums:
      pending = glob.glob(os.path.join(self._directory, f"{step}.orbax-checkpoint-tmp*"))
      step_dir = pending[0] if len(pending) == 1 else os.path.join(self._directory, str(step))
      lines = [f"{digest}  {name}\n" for name, digest in sorted(_digests(step_dir).items())]
      utils.write_text_atomically(os.path.join(step_dir, CHECKSUMS_FILE), "".join(lines))
    self._saving.popleft()

  def _save_failed(self, error: Exception) -> SaveError:
    # The failure may surface one save later: name the oldest started step that never appeared.
    missing = [s for s in self._started if not os.path.isdir(os.path.join(self._directory, str(s)))]
    step = missing[0] if missing else None
    self._saving.clear()
    for unfinished in missing:  # orbax's temporary folders of the failed saves: never a checkpoint, only space
      for folder in glob.glob(os.path.join(self._directory, f"{unfinished}.orbax-checkpoint-tmp*")):
        shutil.rmtree(folder, ignore_errors=True)
    kept = self.latest_step()
    return SaveError(
      f"saving the checkpoint{f' of step {step}' if step is not None else ''} in {self._directory} failed "
      f"({_one_line(error)}); "
      + (f"the last complete checkpoint (step {kept}) is kept" if kept is not None else "no checkpoint is complete")
      + f". {_save_advice(error, step)}"
    )

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

  def read_newest(self, template: Any) -> tuple[Any, dict]:
    """For a command that reads a run (perhaps still training): the newest checkpoint that reads,
    moving nothing. A step that goes away meanwhile (the trainer keeps only ``keep_checkpoints``)
    or fails to read is passed over for the next newest; :class:`CheckpointError` if none reads."""
    failures = {}
    while True:
      self._manager.reload()
      steps = sorted(set(self._manager.all_steps()) - set(failures), reverse=True)
      if not steps:
        break
      try:
        return self._restore(steps[0], template)
      except Exception as error:  # noqa: BLE001 -- any read failure means: try the next newest
        failures[steps[0]] = _one_line(error)
    if not failures:
      raise CheckpointError(f"{self._directory} holds no checkpoint; train the run first")
    listing = "; ".join(f"step {step}: {message}" for step, message in failures.items())
    raise CheckpointError(f"{self._directory} holds checkpoints but none can be read ({listing})")

  def restore(self, step: int, template: Any) -> tuple[Any, dict]:
    """The (state, meta) of the checkpoint at ``step``, laid out like ``template``; moves nothing.

    Raises :class:`CheckpointError` naming the steps there are if ``step`` has no checkpoint, or
    saying why it cannot be read (a checksum mismatch included).
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
    """Verifies the step's checksums (required where the run's other checkpoints carry them), restores
    it, and checks that the step stored inside is the folder's: a damaged checkpoint otherwise."""
    _verify(os.path.join(self._directory, str(step)), required=self._run_has_checksums())
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), template)
    restored = self._manager.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
    )
    stored = getattr(restored.state, "step", None)
    if stored is not None and int(stored) != step:
      raise StepMismatchError(
        f"the folder {step} holds the state of step {int(stored)} (checkpoint folders renamed, swapped or copied in)"
      )
    return restored.state, dict(restored.meta)

  def _run_has_checksums(self) -> bool:
    """Whether any checkpoint of this run carries a checksum file: then every one must (a checkpoint
    without one had it deleted, or was put there by hand)."""
    return any(os.path.exists(os.path.join(self._directory, str(s), CHECKSUMS_FILE)) for s in self.all_steps())

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
    try:
      self._manager.wait_until_finished()
    except Exception as error:  # noqa: BLE001 -- the last save failed
      raise self._save_failed(error) from error
    finally:
      self._manager.close()


class OrbaxInfoFilter(pylogging.Filter):
  """A log filter that keeps orbax's warnings but not its several INFO lines per checkpoint, nor its
  errors and their tracebacks (a failed save): the error: line that follows says what happened; nor
  its notice that a directory opened read-only (by a command that reads a run) is read only. ``main``
  and the commands that use a trained run install it on absl's handler."""

  def filter(self, record):
    if f"{os.sep}orbax{os.sep}" not in record.pathname:
      return True
    record.exc_info, record.exc_text = None, None
    # orbax's errors surface as exceptions that the commands turn into their one error: line (SaveError,
    # CheckpointError); its own ERROR line before it (a full disk's) would say the same twice.
    return record.levelno == pylogging.WARNING and not _READ_ONLY_NOTICE.search(record.getMessage())


class ChecksumError(ValueError):
  """A checkpoint's files do not match its ``sha256sums.txt``."""


def _digests(step_dir: str) -> dict[str, str]:
  """sha256 of every file under ``step_dir`` but the checksum file and orbax's commit record."""
  digests = {}
  for root, _, names in os.walk(step_dir):
    for name in names:
      path = os.path.join(root, name)
      relative = os.path.relpath(path, step_dir)
      if relative in (CHECKSUMS_FILE, *_COMMIT_RECORD):
        continue
      sha = hashlib.sha256()
      with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
          sha.update(chunk)
      digests[relative] = sha.hexdigest()
  return digests


class StepMismatchError(ValueError):
  """A checkpoint folder whose name is not the step stored in it."""


def _verify(step_dir: str, *, required: bool) -> None:
  """Raises :class:`ChecksumError` if ``step_dir``'s files differ from its checksum file, or it has none
  where ``required`` (the run's other checkpoints carry one). Only a run saved entirely by a version
  before checksums restores unverified."""
  path = os.path.join(step_dir, CHECKSUMS_FILE)
  if not os.path.exists(path):
    if required:
      raise ChecksumError(
        f"no {CHECKSUMS_FILE}, though the run's other checkpoints have one (deleted, or the folder put there by hand)"
      )
    logging.info("%s has no %s (saved by an older version): restoring it unverified", step_dir, CHECKSUMS_FILE)
    return
  with open(path) as f:
    recorded = dict(reversed(line.rstrip("\n").split("  ", 1)) for line in f if line.strip())
  actual = _digests(step_dir)
  bad = sorted(name for name in recorded.keys() | actual.keys() if recorded.get(name) != actual.get(name))
  if bad:
    what = ", ".join(
      f"{name} ({'missing' if name not in actual else 'not listed' if name not in recorded else 'changed'})"
      for name in bad[:3]
    )
    raise ChecksumError(f"checksum mismatch: {what}{f' and {len(bad) - 3} more' if len(bad) > 3 else ''}")


def _save_advice(error: BaseException, step: int | None) -> str:
  """What to do about a failed save, by its cause (the error, or the one it was raised from)."""
  causes = [error, error.__cause__, error.__context__]
  if any(type(cause).__name__ == "StepAlreadyExistsError" for cause in causes if cause is not None):
    return (
      f"A checkpoint folder {step if step is not None else 'of that step'} is there already (folders renamed or "
      "copied in by hand?): move it out of checkpoints/, then rerun the same command to resume."
    )
  codes = {getattr(cause, "errno", None) for cause in causes if cause is not None}
  if codes & {errno.EACCES, errno.EPERM, errno.EROFS}:
    return "Make the directory writable, then rerun the same command to resume."
  return "Free disk space or make the directory writable, then rerun the same command to resume."


def _one_line(error: BaseException, limit: int = 300) -> str:
  """``Type: first line of the message``, cut to ``limit`` characters (TensorStore's run to pages)."""
  text = str(error).splitlines()[0] if str(error) else ""
  text = f"{type(error).__name__}: {text}"
  return text if len(text) <= limit else text[: limit - 3] + "..."


def _quiet_closed_event_loops() -> None:
  """Drops the errors orbax's and TensorStore's reader coroutines report after a restore failed
  ("Event loop is closed", "Encountered error while reading array index", asyncio's "Task exception
  was never retrieved": dozens of tracebacks per checkpoint that fails to read, after orbax has
  already raised); other ones still print."""
  if getattr(sys.unraisablehook, "_drops_orbax_read_noise", False):
    return
  pylogging.getLogger("asyncio").addFilter(_not_orbax_task_noise)
  previous = sys.unraisablehook

  def hook(unraisable):
    if not _is_orbax_read_noise(unraisable):
      previous(unraisable)

  hook._drops_orbax_read_noise = True
  sys.unraisablehook = hook


def _not_orbax_task_noise(record: pylogging.LogRecord) -> bool:
  """False for asyncio's report of an abandoned orbax task's exception."""
  if not record.exc_info or record.exc_info[1] is None:
    return True
  frames = traceback.extract_tb(record.exc_info[1].__traceback__)
  return not any(f"{os.sep}orbax{os.sep}" in frame.filename for frame in frames)


def _is_orbax_read_noise(unraisable) -> bool:
  if isinstance(unraisable.exc_value, RuntimeError) and "Event loop is closed" in str(unraisable.exc_value):
    return True
  code = getattr(unraisable.object, "cr_code", None)  # an abandoned orbax coroutine
  return code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename
