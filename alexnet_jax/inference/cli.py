"""What the commands that use a trained run (evaluate, predict, figures, export) share on the command line.

Each failure the user can act on -- no run or no checkpoint in ``--workdir``, a step that is not
there, a bad image file, a config that is not valid, a dataset that is gone -- ends as one
``error: ...`` line and exit status 1, never a traceback; absl's INFO logging is off so that stdout
and stderr hold the answer and the errors.
"""

from __future__ import annotations

import contextlib
import sys

from absl import app, logging

from alexnet_jax.config import flag_errors, validation
from alexnet_jax.train import checkpoints


def user_errors(*, data: bool = True) -> tuple[type[Exception], ...]:
  """The exceptions reported as one ``error:`` line; ``data=False`` leaves out the dataset's (whose
  module imports TensorFlow) for a command that reads no data."""
  from alexnet_jax.inference import export, trained_run  # pylint: disable=g-import-not-at-top

  errors = (trained_run.RunError, checkpoints.CheckpointError, validation.ConfigError, export.ExportError)
  if data:
    from alexnet_jax.data import datasets  # pylint: disable=g-import-not-at-top

    errors += (datasets.DatasetUnavailableError,)
  return errors


@contextlib.contextmanager
def reporting_user_errors(*, data: bool = True):
  """Turns the errors of :func:`user_errors` into ``error: MESSAGE`` on stderr and exit status 1."""
  errors = user_errors(data=data)
  try:
    yield
  except errors as error:
    fail(str(error))


def fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(1)


def run(main) -> None:
  """``app.run(main)`` with one-line flag errors and absl logging at WARNING."""

  def quiet_main(argv):
    logging.set_verbosity(logging.WARNING)
    return main(argv)

  app.run(quiet_main, flags_parser=flag_errors.parse_flags)
