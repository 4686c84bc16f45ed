"""Command line: train and evaluate one experiment config in one work directory.

  python -m alexnet_jax.main --workdir=runs/fm
  python -m alexnet_jax.main --workdir=runs/in1k --config=experiments/imagenet2012.py
  python -m alexnet_jax.main --workdir=/tmp/fm --config=experiments/fashion_mnist.py:smoke \
      --config.model.dropout_rate=0.3

Running again with the same ``--workdir`` resumes from its latest checkpoint; a finished run says
so and exits. A bad config value, missing data, a workdir of another run, unreadable checkpoints or
a diverged (NaN/Inf) loss end with one message and exit status 1. SIGTERM or Ctrl-C saves a
checkpoint and exits with status 75 (rerun to resume). See README, "When things go wrong".
"""

import logging as pylogging
import os
import sys

import jax
import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from alexnet_jax import (checkpointing, config_validation, distributed, divergence, preemption,
                         train, workdir)

# Failures the user can act on: one "error: ..." message and exit status 1, no traceback.
USER_ERRORS = (config_validation.ConfigError, workdir.WorkdirError, checkpointing.CheckpointError,
               divergence.DivergedError)

FLAGS = flags.FLAGS
DEFAULT_CONFIG = "experiments/fashion_mnist.py"
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard events and summary.json.")
flags.DEFINE_bool("allow_config_change", False,
                  "Resume a workdir whose recorded config differs from this one (it is refused otherwise).")
flags.mark_flags_as_required(["workdir"])
flags.DEFINE_string("coordinator_address", None,
                    "host:port of process 0 for a multi-process run (default: auto-detect on SLURM/TPU/GKE).")
flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run (default: auto-detect).")
flags.DEFINE_integer("process_id", None, "This process's index in a multi-process run (default: auto-detect).")
config_flags.DEFINE_config_file(
    "config", DEFAULT_CONFIG, "Experiment config file (NAME.py or NAME.py:smoke).",
    lock_config=True)


def parse_flags(argv):
  """absl's flag parsing, with every config-loading failure reported in one line, not a traceback.

  ml_collections raises plain exceptions for an unknown ``--config.FIELD``, embeds a traceback in
  the message of a config file that raised, and defers a file that failed to load until first use.
  """
  try:
    remaining = FLAGS(argv)
    FLAGS.config.keys()  # a config file that failed to load raises here, not later in training
    return remaining
  except flags.Error as error:
    message = _last_line(error)
  except (AttributeError, KeyError) as error:
    message = f"the config has no field {_innermost_message(error)}{_valid_fields_hint(argv)}"
  except (OSError, ValueError, TypeError) as error:
    message = f"cannot load --config: {_last_line(error)}"
  sys.stderr.write(f"FATAL Flags parsing error: {message}\n"
                   "Pass --helpshort or --helpfull to see help on flags.\n")
  sys.exit(1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  _hide_accelerators_from_tensorflow()
  logging.get_absl_handler().addFilter(_OrbaxInfoFilter())
  try:  # before anything touches a device
    distributed.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  except ValueError as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
  logging.info("JAX process %d of %d, devices: %s", jax.process_index(), jax.process_count(),
               jax.devices())
  from alexnet_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir,
                             overrides=config_flags.get_override_values(FLAGS["config"]),
                             allow_config_change=FLAGS.allow_config_change)
  except (*USER_ERRORS, input_pipeline.DatasetUnavailableError) as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
  except preemption.Preempted as stopped:
    logging.warning("%s", stopped)
    sys.exit(preemption.EXIT_PREEMPTED)


def _hide_accelerators_from_tensorflow():
  """tf.data runs on the CPU; keep TensorFlow from claiming GPU memory that JAX needs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], "GPU")


class _OrbaxInfoFilter(pylogging.Filter):
  """Keeps orbax's warnings and errors but not its several INFO lines per checkpoint."""

  def filter(self, record):
    return record.levelno >= pylogging.WARNING or f"{os.sep}orbax{os.sep}" not in record.pathname


def _innermost_message(error: BaseException) -> str:
  """ml_collections nests its "no such field" KeyError (with a did-you-mean hint) in others."""
  message = error
  while isinstance(message, BaseException) and message.args:
    message = message.args[0]
  return str(message).replace("\n", "; ")


def _valid_fields_hint(argv) -> str:
  """"; config.model has: a, b, ..." for the first ``--config.X`` whose X the config lacks."""
  try:
    config = _load_config_file(_config_arg(argv))
  except Exception:  # noqa: BLE001 -- only a hint: the one-line error stands without it
    return ""
  for arg in argv[1:]:
    if not arg.startswith("--config."):
      continue
    node, path = config, "config"
    for name in arg[len("--config."):].split("=", 1)[0].split("."):
      if not isinstance(node, ml_collections.ConfigDict):
        break
      if name not in node:
        return f"; {path} has: {', '.join(sorted(node.keys()))}"
      node, path = node[name], f"{path}.{name}"
  return ""


def _config_arg(argv) -> str:
  """The --config file (NAME.py[:variant]) given in ``argv``, or the flag's default."""
  for arg in argv[1:]:
    if arg.startswith("--config="):
      return arg[len("--config="):]
  return DEFAULT_CONFIG


def _load_config_file(spec: str):
  import importlib.util  # pylint: disable=g-import-not-at-top
  path, _, variant = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("_config_for_hint", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(variant or None)


def _last_line(error: Exception) -> str:
  """The message of an error whose text may embed a traceback (ml_collections does): its last line."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  return lines[-1] if lines else type(error).__name__


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
