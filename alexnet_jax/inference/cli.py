"""What the commands that use a trained run (evaluate, predict, figures, export) share on the command line.

Each failure the user can act on -- no run or no checkpoint in ``--workdir``, a step that is not
there, a bad image file, a config that is not valid, a dataset that is gone -- ends as one
``error: ...`` line and exit status 1, never a traceback; absl's INFO logging is off so that stdout
and stderr hold the answer and the errors.
"""

from __future__ import annotations

import contextlib
import sys

from absl import app, flags, logging

from alexnet_jax import compilation_cache, errors, flag_errors


@contextlib.contextmanager
def reporting_user_errors():
  """Turns every :class:`~alexnet_jax.errors.UserError` into ``error: MESSAGE`` on stderr and exit status 1."""
  try:
    yield
  except errors.UserError as error:
    fail(str(error))


def prepare_host(workdir: str) -> None:
  """Refuses a ``workdir`` without a run in one line, before the seconds of loading a checkpoint."""
  from alexnet_jax.inference import trained_run  # pylint: disable=g-import-not-at-top

  trained_run.check_workdir(workdir)


def no_arguments(argv: list[str]) -> None:
  """Fails with one line when a command that takes only flags got positional arguments."""
  if len(argv) > 1:
    fail(f"unexpected arguments: {' '.join(argv[1:])}")


def fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(1)


def define_run_flags() -> None:
  """``--workdir`` (required), ``--step`` and ``--weights``, the flags every command on a trained run has."""
  flags.DEFINE_string("workdir", None, "Work directory of a trained run (holds config.json and checkpoints/).")
  flags.DEFINE_integer("step", None, "Checkpoint step to use (default: the latest).", lower_bound=0)
  flags.DEFINE_enum(
    "weights",
    "average",
    ["average", "trained"],
    "A run with config.ema_decay > 0 holds the moving average of its weights (what its evaluations report) "
    "and the trained weights themselves: which to use. Runs without an average have only the trained ones.",
  )
  flags.mark_flags_as_required(["workdir"])


def define_overwrite_flag() -> None:
  """``--overwrite``: the one switch that lets a command replace an existing output file."""
  flags.DEFINE_bool("overwrite", False, "Replace output files that exist (never a training run's own files).")


def run(main, define_flags) -> None:
  """``define_flags()``, then ``app.run(main)`` with one-line flag errors and absl logging at WARNING."""
  define_flags()

  def quiet_main(argv):
    from alexnet_jax.train import checkpoints  # pylint: disable=g-import-not-at-top -- imports orbax

    logging.set_verbosity(logging.WARNING)
    logging.get_absl_handler().addFilter(checkpoints.OrbaxInfoFilter())
    compilation_cache.enable()
    return main(argv)

  app.run(quiet_main, flags_parser=flag_errors.parse_flags)
