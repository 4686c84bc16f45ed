"""Small helpers that several sub-packages share: atomic file writes, flat dicts, durations, pyplot."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO


def write_atomically(path: str, write: Callable[[BinaryIO], None], *, replace: bool = True) -> None:
  """Calls ``write(file)`` on a temporary file beside ``path``, then fsync and a rename: a reader (or a
  run killed mid-write) sees the old file or the new one, never half of one; on any failure (a full
  disk, a writer that raised) the temporary file is removed and the error raised.

  ``replace=False`` publishes the file with a hard link instead of the rename, which fails with
  ``FileExistsError`` if ``path`` exists at that moment: no writer racing this one is ever replaced.
  (On a file system without hard links, a rename after a last look: atomic only where links are.)"""
  tmp = f"{path}.tmp.{os.getpid()}"
  try:
    with open(tmp, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    _publish(tmp, path, replace)
  finally:
    if os.path.lexists(tmp):
      os.remove(tmp)


def _publish(tmp: str, path: str, replace: bool) -> None:
  if replace:
    os.replace(tmp, path)
    return
  try:
    os.link(tmp, path)  # EEXIST when path exists, however recently it appeared
  except FileExistsError:
    raise
  except OSError as error:
    if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
      raise
    if os.path.lexists(path):
      raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path) from error
    os.replace(tmp, path)


def write_bytes_atomically(path: str, data: bytes) -> None:
  """Writes ``data`` to ``path`` as :func:`write_atomically` does."""
  write_atomically(path, lambda f: f.write(data))


def write_text_atomically(path: str, text: str) -> None:
  """``text`` (UTF-8) written to ``path`` as :func:`write_bytes_atomically` writes bytes."""
  write_bytes_atomically(path, text.encode())


def write_json_atomically(path: str, data: Any, *, sort_keys: bool = True) -> None:
  """``data`` as indented JSON (values JSON lacks as their ``str``), written atomically; keys sorted
  unless their order means something (``sort_keys=False``)."""
  write_text_atomically(path, json_text(data, sort_keys=sort_keys))


def json_text(data: Any, *, sort_keys: bool = True) -> str:
  """``data`` as indented JSON text with a final newline (values JSON lacks as their ``str``)."""
  return json.dumps(data, indent=2, sort_keys=sort_keys, default=str) + "\n"


def read_json_object(path: str) -> dict:
  """The JSON object in ``path``; ``OSError`` or ``ValueError`` (not JSON, or JSON but not an object) otherwise."""
  with open(path) as f:
    data = json.load(f)
  if not isinstance(data, dict):
    raise ValueError(f"a JSON {type(data).__name__}, not an object")
  return data


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """Nested mappings -> one level with dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def format_duration(seconds: float) -> str:
  """``H:MM:SS``, e.g. 3725 -> "1:02:05"."""
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}"


def pyplot():
  """``matplotlib.pyplot`` on the Agg backend (PNG files, no display needed), imported on first use."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  return plt


def usable_cores() -> int:
  """The cores this process may run on: its CPU affinity (one under ``taskset -c 0``) where the OS has one
  (macOS has not), else the machine's. What ``config.input.read_threads = 0`` reads with, and how many
  processes make synthetic images."""
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def special_file_kind(mode: int) -> str | None:
  """What a file of ``st_mode`` ``mode`` is, in words, when it is not a regular file (None when it is one)."""
  kinds = (
    (stat.S_ISLNK, "a symlink"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
  )
  return next((words for test, words in kinds if test(mode)), None)
