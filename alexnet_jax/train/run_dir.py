"""Start-up checks of the work directory: writable, and not holding a run of another config.

The first run writes its config to ``WORKDIR/config.json``. A later run in the same directory
resumes that run, which is only meaningful with the same config: a different one is refused with
the differing fields listed, unless the caller allows the change (``--allow_config_change``, e.g.
to train a finished run longer), which then becomes the recorded config. The
:data:`OBSERVATION_FIELDS` (profiling) may change freely.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from typing import Any

from alexnet_jax import utils

CONFIG_FILE = "config.json"
# Fields that change only what a run observes of itself, not what it trains: a resume may change them.
OBSERVATION_FIELDS = frozenset({"profile_steps"})


class WorkdirError(RuntimeError):
  """The work directory cannot be used for this run; the message says why and what to do."""


def prepare(workdir: str, config_json: Mapping[str, Any], *, allow_config_change: bool, write: bool = True) -> None:
  """Creates ``workdir``, checks that it is writable and that its recorded config matches.

  ``config_json`` is the config as JSON data (``json.loads(config.to_json_best_effort())``).
  Only one process of a multi-process run should ``write``.
  """
  _check_writable(workdir)
  path = os.path.join(workdir, CONFIG_FILE)
  if os.path.exists(path):
    with open(path) as f:
      recorded = json.load(f)
    changes = [change for change in differences(recorded, config_json) if change[0] not in OBSERVATION_FIELDS]
    if changes and not allow_config_change:
      listing = "\n  ".join(f"{name}: {old!r} in the workdir, {new!r} now" for name, old, new in changes)
      raise WorkdirError(
        f"{workdir} holds a run with a different config:\n  {listing}\nUse another --workdir, "
        "or pass --allow_config_change to resume that run with the new config."
      )
    if not changes:
      return
  if write:
    utils.write_json_atomically(path, config_json)


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
  """(dotted field, old value, new value) for every leaf that differs; missing ones are None."""
  flat_old, flat_new = utils.flatten(old), utils.flatten(new)
  return [
    (name, flat_old.get(name), flat_new.get(name))
    for name in sorted(flat_old | flat_new)
    if flat_old.get(name) != flat_new.get(name)
  ]


def _check_writable(workdir: str) -> None:
  try:
    os.makedirs(workdir, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=workdir, prefix=".write_test"):
      pass
  except OSError as error:
    raise WorkdirError(
      f"--workdir={workdir} is not a writable directory ({error.strerror or error}); "
      "checkpoints and summaries could not be saved there."
    ) from error
