"""The work directory: one trainer at a time, writable, and not holding a run of another config.

:class:`TrainerLock` makes a second trainer in the same directory exit at once (a sweep rerun while
an orphaned trainer still runs, two shells, ...): an exclusive ``flock`` on ``WORKDIR/trainer.lock``,
which the kernel releases when the process dies, so even ``kill -9`` leaves no stale lock. The
file says who holds it (host, PID, since when), for the refusal message.

A run records its config in ``WORKDIR/config.json``. A later run in the same directory resumes
that run, which is only meaningful with the same config: a different one is refused with the
differing fields listed, unless the caller allows the change (``--allow_config_change``, e.g. to
train a finished run longer), which then becomes the recorded config. :func:`check_config` only
reads; :func:`record_config` writes, once every start-up check has passed, so that a failed or
refused start leaves the directory as it found it. The :data:`OBSERVATION_FIELDS` (profiling) may
change freely.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import socket
import tempfile
from collections.abc import Mapping
from typing import Any

from alexnet_jax import errors, outputs, utils
from alexnet_jax.train import preemption

CONFIG_FILE = "config.json"
# Written by alexnet_jax.import_weights: the run holds a reference's weights (file, sha256, format), not a training.
IMPORTED_FILE = "imported.json"
LOCK_FILE = "trainer.lock"
# Fields that change only what a run observes of itself, not what it trains: a resume may change them.
OBSERVATION_FIELDS = frozenset({"profile_steps"})


class WorkdirError(errors.UserError, RuntimeError):
  """The work directory cannot be used for this run; the message says why and what to do."""


def prepare(workdir: str, config_json: Mapping[str, Any], *, allow_config_change: bool, write: bool = True) -> None:
  """Creates ``workdir``, checks that it is writable and that its recorded config matches, and
  records ``config_json`` there if it is new or changed (only where ``write``: process 0)."""
  _check_writable(workdir)
  if check_config(workdir, config_json, allow_config_change=allow_config_change) and write:
    record_config(workdir, config_json)


def check_config(workdir: str, config_json: Mapping[str, Any], *, allow_config_change: bool) -> bool:
  """Whether ``config_json`` must be recorded (no config yet, or an allowed change); writes nothing.

  ``config_json`` is the config as JSON data (``json.loads(config.to_json_best_effort())``). A
  different recorded config, or a ``config.json`` that is not JSON, raises :class:`WorkdirError`
  unless ``allow_config_change``; so does a directory of imported weights (:data:`IMPORTED_FILE`).
  """
  _refuse_imported(workdir)
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return True
  try:
    recorded = utils.read_json_object(path)
  except (OSError, ValueError) as error:
    if allow_config_change:
      return True
    raise WorkdirError(
      f"{path} cannot be read ({error}); it records the config of the run in this workdir. Restore it, or "
      "pass --allow_config_change to record this command's config in its place."
    ) from error
  changes = [change for change in differences(recorded, config_json) if change[0] not in OBSERVATION_FIELDS]
  if changes and not allow_config_change:
    listing = "\n  ".join(f"{name}: {old!r} in the workdir, {new!r} now" for name, old, new in changes)
    raise WorkdirError(
      f"{workdir} holds a run with a different config:\n  {listing}\nUse another --workdir, "
      "or pass --allow_config_change to resume that run with the new config."
    )
  return bool(changes)


def _refuse_imported(workdir: str) -> None:
  """An imported run is not trained in place: fine-tuning starts a new run from it."""
  if os.path.exists(os.path.join(workdir, IMPORTED_FILE)):
    raise WorkdirError(
      f"--workdir={workdir} holds imported weights (see its {IMPORTED_FILE}), not a run to resume: fine-tune them "
      f"in another --workdir with --config.init_from={workdir}"
    )


def record_config(workdir: str, config_json: Mapping[str, Any]) -> None:
  utils.write_json_atomically(os.path.join(workdir, CONFIG_FILE), config_json)


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
  """(dotted field, old value, new value) for every leaf that differs; missing ones are None."""
  flat_old, flat_new = utils.flatten(old), utils.flatten(new)
  return [
    (name, flat_old.get(name), flat_new.get(name))
    for name in sorted(flat_old | flat_new)
    if flat_old.get(name) != flat_new.get(name)
  ]


def _check_writable(workdir: str) -> None:
  if os.path.lexists(workdir) and not os.path.isdir(workdir):  # a file, or a symlink to nothing
    raise WorkdirError(f"--workdir={workdir} {outputs.not_a_folder(workdir)}; give a folder for the run")
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as error:
    raise _unwritable(f"--workdir={workdir}", "checkpoints and summaries", error) from error
  check_writable(workdir, "checkpoints and summaries", name=f"--workdir={workdir}")


def check_writable(directory: str, what: str, *, name: str | None = None) -> None:
  """Raises :class:`WorkdirError` unless a file can be created in the existing ``directory``.

  Also run at start-up on ``checkpoints/``: orbax itself would wait minutes on a read-only one.
  """
  try:
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".write_test"):
      pass
  except OSError as error:
    raise _unwritable(name or directory, what, error) from error


def _unwritable(name: str, what: str, error: OSError) -> WorkdirError:
  return WorkdirError(
    f"{name} is not a writable directory ({error.strerror or error}); {what} could not be saved there."
  )


class TrainerLock:
  """Context manager: holds ``WORKDIR/trainer.lock`` exclusively, or raises :class:`WorkdirError`.

  Creates ``workdir`` if needed; on exit releases the lock, removes the lock file, and removes
  ``workdir`` again if this lock created it and nothing else was written there (a failed start).
  """

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.path = os.path.join(workdir, LOCK_FILE)
    self._fd: int | None = None
    self._created = False

  def __enter__(self) -> TrainerLock:
    self._created = not os.path.exists(self.workdir)
    _check_writable(self.workdir)
    while self._fd is None:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError as error:
        os.close(fd)
        if error.errno not in (errno.EWOULDBLOCK, errno.EACCES):
          raise
        raise WorkdirError(
          f"another trainer is running in --workdir={self.workdir} ({self._holder()}); wait for it to "
          f"finish or stop it, or use another --workdir"
        ) from None
      if _same_file(fd, self.path):  # not a file a releasing holder unlinked meanwhile
        self._fd = fd
      else:
        os.close(fd)
    since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    record = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": since}) + "\n"
    os.ftruncate(self._fd, 0)
    os.pwrite(self._fd, record.encode(), 0)
    preemption.EARLY_EXIT_CLEANUPS.append(self._release)
    return self

  def __exit__(self, *exc_info) -> None:
    preemption.EARLY_EXIT_CLEANUPS.remove(self._release)
    self._release()

  def _release(self) -> None:
    try:
      os.unlink(self.path)  # while still holding it: a waiting opener then sees another file
    finally:
      os.close(self._fd)
      self._fd = None
    if self._created:
      try:
        os.rmdir(self.workdir)  # only succeeds if the run wrote nothing
      except OSError:
        pass

  def _holder(self) -> str:
    try:
      with open(self.path) as f:
        holder = json.load(f)
      return f"host {holder['host']}, PID {holder['pid']}, since {holder['since']}"
    except (OSError, ValueError, KeyError, TypeError):
      return f"its lock file {self.path} is held"


def _same_file(fd: int, path: str) -> bool:
  try:
    return os.fstat(fd).st_ino == os.stat(path).st_ino
  except FileNotFoundError:
    return False
