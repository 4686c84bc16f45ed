"""The one way a command writes what it outputs (an export, an evaluation report, a figure, a sweep's report).

Every output goes through :func:`check` before the command spends time computing it, and through
:func:`write` once it is ready:

- its parent folders are made; a folder that cannot be made is one line;
- it is nothing but a regular file or a new name (never a directory, a device, a FIFO, a socket or a
  symlink: replacing one would destroy what it is), and never a file a training run owns
  (``config.json``, ``summary.json``, the trainer's lock and log, TensorBoard events, anything under
  ``checkpoints/``): refused;
- an existing file is replaced only when the command was given ``--overwrite``, and without it a file
  that appears while the output is computed (another writer racing this one) is not replaced either:
  the output is published with a hard link, which fails where a file exists;
- it is written atomically (a temporary file beside it, fsync, rename): a full or read-only disk,
  or a kill, leaves the old file or none, never half of one, and the failure is one line naming the path.

Each refusal is an :class:`OutputError` (a :class:`~alexnet_jax.errors.UserError`): one ``error:`` line.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import BinaryIO

from alexnet_jax import errors, utils

# What a work directory of alexnet_jax.main holds that no other command may write over: the first
# component of a path relative to the workdir (train/run_dir.py, train/loop.py, train/checkpoints.py,
# sweeps/runner.py name them).
RUN_FILES = ("config.json", "summary.json", "trainer.lock", "train.log", "checkpoints")
EVENTS_PREFIX = "events.out.tfevents."
OVERWRITE_HINT = "pass --overwrite to replace it"


class OutputError(errors.UserError, OSError):
  """An output that cannot or may not be written; the message names the path and why."""


def check(path: str, *, overwrite: bool = False) -> str:
  """Refuses ``path`` as an output unless it can be written (see the module docstring); makes its
  parent folders; returns ``path``. Cheap: commands call it before their work."""
  if not path:
    raise OutputError("the output path is empty; give a file name")
  if os.path.isdir(path):
    raise OutputError(f"{path} is a directory; give a file name")
  owner = owning_run(path)
  if owner is not None:
    raise OutputError(f"{path} belongs to the training run in {owner}; write elsewhere")
  if os.path.lexists(path):
    kind = not_a_regular_file(path)
    if kind:
      raise OutputError(f"{path} is {kind}, not a regular file: it is never replaced; give another path")
    if not overwrite:
      raise OutputError(f"{path} exists; {OVERWRITE_HINT}")
  make_folder(os.path.dirname(path) or ".")
  return path


def not_a_regular_file(path: str) -> str | None:
  """What an existing ``path`` is, in words, when it is not a regular file (None when it is one)."""
  return utils.special_file_kind(os.lstat(path).st_mode)


def make_folder(folder: str) -> str:
  """``folder`` and its parents, made if missing and checked writable; OutputError in one line otherwise."""
  if os.path.lexists(folder) and not os.path.isdir(folder):
    raise OutputError(f"{folder} {not_a_folder(folder)}; give a folder")
  try:
    os.makedirs(folder, exist_ok=True)
  except OSError as error:
    raise OutputError(f"cannot make the folder {folder}: {_reason(error)}") from error
  if not os.access(folder, os.W_OK | os.X_OK):
    raise OutputError(f"cannot write into {folder}: permission denied (a read-only folder)")
  return folder


def not_a_folder(path: str) -> str:
  """What an existing ``path`` that is not a folder is, in words: a file, a symlink loop or a dangling symlink."""
  if os.path.islink(path) and not os.path.exists(path):
    try:
      os.stat(path)
    except OSError as error:
      if error.errno == errno.ELOOP:
        return f"is a symlink loop ({path} -> {os.readlink(path)} leads back to itself)"
    return f"is a symlink to {os.readlink(path)}, which does not exist"
  return "is a file, not a folder"


def write(path: str, write_fn: Callable[[BinaryIO], None], *, overwrite: bool = False) -> str:
  """Writes ``path`` atomically with ``write_fn(file)`` after :func:`check`; returns ``path``. Without
  ``overwrite`` a file that appeared meanwhile is kept, and the write refused in one line."""
  check(path, overwrite=overwrite)
  try:
    utils.write_atomically(path, write_fn, replace=overwrite)
  except FileExistsError as error:
    raise OutputError(f"{path} appeared while it was being written (another writer?); {OVERWRITE_HINT}") from error
  except OSError as error:
    raise OutputError(f"writing {path} failed: {_reason(error)}; nothing was written there") from error
  return path


def write_bytes(path: str, data: bytes, *, overwrite: bool = False) -> str:
  """``data`` written to ``path`` as :func:`write` writes."""
  return write(path, lambda f: f.write(data), overwrite=overwrite)


def write_text(path: str, text: str, *, overwrite: bool = False) -> str:
  """``text`` (UTF-8) written to ``path`` as :func:`write` writes."""
  return write_bytes(path, text.encode(), overwrite=overwrite)


def write_json(path: str, data, *, overwrite: bool = False, sort_keys: bool = True) -> str:
  """``data`` as indented JSON (``utils.json_text``) written to ``path`` as :func:`write` writes."""
  return write_text(path, utils.json_text(data, sort_keys=sort_keys), overwrite=overwrite)


def write_figure(path: str, figure, *, overwrite: bool = False, **savefig_options) -> str:
  """A matplotlib figure saved as PNG to ``path`` as :func:`write` writes."""
  return write(path, lambda f: figure.savefig(f, format="png", **savefig_options), overwrite=overwrite)


def owning_run(path: str) -> str | None:
  """The work directory of a training run that ``path`` is one of the files of, else None.

  A work directory is recognised by its ``config.json`` beside a ``checkpoints/`` folder; symlinks
  are resolved first, so a link cannot lead a command onto a run's file."""
  target = os.path.realpath(path)
  folder = os.path.dirname(target)
  while True:
    if os.path.isfile(os.path.join(folder, RUN_FILES[0])) and os.path.isdir(os.path.join(folder, "checkpoints")):
      first = os.path.relpath(target, folder).split(os.sep)[0]
      if first in RUN_FILES or first.startswith(EVENTS_PREFIX):
        return folder
    parent = os.path.dirname(folder)
    if parent == folder:
      return None
    folder = parent


def _reason(error: OSError) -> str:
  """The failure in words; a full disk said so plainly."""
  if error.errno == errno.ENOSPC:
    return "the disk is full"
  if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
    return f"{error.strerror} (a read-only folder or file system)"
  return error.strerror or str(error)
