"""Command line: evaluate one checkpoint of a trained run with the run's own config.

  python -m alexnet_jax.evaluate --workdir=runs/fm
  python -m alexnet_jax.evaluate --workdir=runs/fm --step=2000 --crops=ten_crop --split=train

Prints top-1/top-5 accuracy, the loss and the accuracy of every class, and writes
``WORKDIR/eval_<split>_<step>.json`` (``_ten_crop`` appended for ten crops) with the confusion matrix,
and the matrix as ``..._confusion.png`` next to it. A workdir without checkpoints, or a step it does
not hold, ends with one ``error:`` line and exit status 1.
"""

from absl import flags

from alexnet_jax.data import options, tf_host
from alexnet_jax.inference import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
  """This command's flags; defined when it runs, not when it is imported (several commands
  share flag names, and absl allows one definition per process)."""
  cli.define_run_flags()
  flags.DEFINE_enum("crops", None, list(options.EVAL_CROPS), "Test views (default: the run's config.input.eval_crops).")
  flags.DEFINE_string(
    "split", None, "TFDS split to evaluate, e.g. test or train[:10%] (default: the run's eval split)."
  )
  flags.DEFINE_integer(
    "max_examples", None, "Evaluate at most this many examples; -1 = the whole split (default: the run's setting)."
  )


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  from alexnet_jax.inference import trained_run  # pylint: disable=g-import-not-at-top

  with cli.reporting_user_errors():
    trained_run.check_workdir(FLAGS.workdir)  # before seconds of importing TensorFlow
    tf_host.tensorflow()  # before JAX touches a GPU: TensorFlow must not claim its memory
    from alexnet_jax.inference import evaluation  # pylint: disable=g-import-not-at-top

    overrides = {"input.eval_crops": FLAGS.crops, "eval_split": FLAGS.split, "eval_max_examples": FLAGS.max_examples}
    run = trained_run.load(FLAGS.workdir, FLAGS.step, {k: v for k, v in overrides.items() if v is not None})
    report = evaluation.evaluate(run)
    print(evaluation.format_report(report))
    stem = evaluation.output_stem(FLAGS.workdir, report["split"], run.step, report["crops"])
    print("wrote " + " and ".join(evaluation.write(report, stem)))


if __name__ == "__main__":
  cli.run(main, define_flags)
