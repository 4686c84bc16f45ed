"""Command line: train and evaluate one experiment config in one work directory.

  python -m alexnet_jax.main --workdir=runs/fm
  python -m alexnet_jax.main --workdir=runs/in1k --config=experiments/imagenet2012.py
  python -m alexnet_jax.main --workdir=/tmp/fm --config=experiments/fashion_mnist.py:smoke \
      --config.model.dropout_rate=0.3

Running again with the same ``--workdir`` resumes from its latest checkpoint; a finished run says
so and exits. A bad config value or missing data ends with one message and exit status 1.
"""

import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from alexnet_jax import config_validation, train

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard events and summary.json.")
flags.mark_flags_as_required(["workdir"])
config_flags.DEFINE_config_file(
    "config", "experiments/fashion_mnist.py", "Experiment config file (NAME.py or NAME.py:smoke).",
    lock_config=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  _hide_accelerators_from_tensorflow()
  logging.info("JAX process %d of %d, devices: %s", jax.process_index(), jax.process_count(),
               jax.devices())
  from alexnet_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir,
                             overrides=config_flags.get_override_values(FLAGS["config"]))
  except (config_validation.ConfigError, input_pipeline.DatasetUnavailableError) as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)


def _hide_accelerators_from_tensorflow():
  """tf.data runs on the CPU; keep TensorFlow from claiming GPU memory that JAX needs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], "GPU")


if __name__ == "__main__":
  app.run(main)
