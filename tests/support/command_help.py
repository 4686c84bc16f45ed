"""Prints the ``--help`` text of several commands, run one after the other in this one process, as JSON.

    python tests/support/command_help.py alexnet_jax.main launch/sweep.py ...

A dotted name runs as ``python -m NAME --help``, a path as ``python PATH --help``; the output is one
JSON object, command -> everything it printed (stdout and stderr). One process imports jax, flax and
the rest once for all of them. absl allows each flag name once per process, so the flags a command
defined are removed before the next one runs (absl's own --help flags, defined first, stay).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import sys
import warnings

from absl import app, flags


def help_text(command: str) -> str:
  """What ``command --help`` prints; the flags it defined are removed afterwards."""
  before = set(flags.FLAGS)
  out = io.StringIO()
  sys.argv = [command, "--help"]
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), contextlib.suppress(SystemExit):
    if command.endswith(".py"):
      runpy.run_path(command, run_name="__main__")
    else:
      runpy.run_module(command, run_name="__main__", alter_sys=True)
  for name in set(flags.FLAGS) - before:
    delattr(flags.FLAGS, name)
  return out.getvalue()


def main(commands: list[str]) -> None:
  app.define_help_flags()
  # runpy warns when a module runs as __main__ that an earlier command imported: expected here.
  warnings.filterwarnings("ignore", message=".*found in sys.modules after import of package", category=RuntimeWarning)
  texts = {command: help_text(command) for command in commands}
  sys.stdout.write(json.dumps(texts) + "\n")


if __name__ == "__main__":
  sys.path.insert(0, os.getcwd())
  main(sys.argv[1:])
