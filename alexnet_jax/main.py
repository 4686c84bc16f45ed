"""Command line: train and evaluate one experiment config in one work directory.

  python -m alexnet_jax.main --workdir=runs/fm
  python -m alexnet_jax.main --workdir=runs/in1k --config=experiments/imagenet2012.py
  python -m alexnet_jax.main --workdir=/tmp/fm --config=experiments/fashion_mnist.py:smoke --config.model.lrn=False

Rerunning with the same ``--workdir`` resumes its latest checkpoint. A bad config value, missing data,
another run's or another trainer's workdir, unreadable checkpoints or a diverged loss end with one
``error:`` line and exit status 1; SIGTERM or Ctrl-C, at any moment, with status 75 (rerun to resume)
after saving what training had. See docs/when_things_go_wrong.md.
"""

from alexnet_jax.train import preemption  # the standard library only: fast

if __name__ == "__main__":  # before the slow imports below: a signal during them also exits 75
  preemption.exit_on_signals()

import os
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from alexnet_jax import compilation_cache, errors, flag_errors
from alexnet_jax.parallel import distributed
from alexnet_jax.train import checkpoints, loop

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard events and summary.json.")
flags.DEFINE_bool("allow_config_change", False, "Resume a workdir whose recorded config differs from this one.")
flags.mark_flags_as_required(["workdir"])
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 of a multi-process run (default: auto).")
flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run (default: auto-detect).")
flags.DEFINE_integer("process_id", None, "This process's index in a multi-process run (default: auto-detect).")
config_flags.DEFINE_config_file(
  "config", flag_errors.DEFAULT_CONFIG, "Experiment config file (NAME.py or NAME.py:smoke).", lock_config=True
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  preemption.exit_on_signals()  # (again, for callers that import this module)
  compilation_cache.enable()
  logging.get_absl_handler().addFilter(checkpoints.OrbaxInfoFilter())
  try:  # before anything touches a device
    distributed.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  except ValueError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
  logging.info("JAX process %d of %d, devices: %s", jax.process_index(), jax.process_count(), jax.devices())
  overrides = config_flags.get_override_values(FLAGS["config"])
  try:
    loop.train_and_evaluate(
      FLAGS.config, FLAGS.workdir, overrides=overrides, allow_config_change=FLAGS.allow_config_change
    )
  except checkpoints.SaveError as error:
    print(f"error: {error}", file=sys.stderr, flush=True)
    # orbax's save threads can block the interpreter's exit for minutes after a failed save;
    # everything that completed is on disk and the TensorBoard writer is closed.
    os._exit(1)
  except errors.UserError as error:  # one line for every failure the user can act on
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
  except preemption.Preempted as stopped:
    logging.warning("%s", stopped)
    sys.exit(preemption.EXIT_PREEMPTED)


if __name__ == "__main__":
  app.run(main, flags_parser=flag_errors.parse_flags)
