"""Command line: evaluate one checkpoint of a trained run with the run's own config.

  python -m alexnet_jax.evaluate --workdir=runs/fm
  python -m alexnet_jax.evaluate --workdir=runs/fm --step=2000 --crops=ten_crop --split=train

Prints top-1/top-5 accuracy, the loss and the accuracy of every class, and writes
``WORKDIR/eval_<split>_<step>.json`` (the split's slicing spelled out, ``test[:10%]`` as ``test_to10pct``;
``_<crops>`` appended for views other than the centre crop, ``_max<N>`` for ``--max_examples``,
``_trained`` for a moving-average run's trained weights) with the confusion matrix,
and the matrix as ``..._confusion.png`` next to it; an existing report is replaced only with
``--overwrite``. A workdir without checkpoints, a step it does not hold, a split that does not
parse or is empty, an unwritable or full workdir end with one ``error:`` line and exit status 1.
"""

from absl import flags

from alexnet_jax.data import options
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
  cli.define_overwrite_flag()


def main(argv):
  cli.no_arguments(argv)
  from alexnet_jax.inference import trained_run  # pylint: disable=g-import-not-at-top

  with cli.reporting_user_errors():
    cli.prepare_host(FLAGS.workdir)
    from alexnet_jax.inference import evaluation  # pylint: disable=g-import-not-at-top

    overrides = {"input.eval_crops": FLAGS.crops, "eval_split": FLAGS.split, "eval_max_examples": FLAGS.max_examples}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    run = trained_run.load(FLAGS.workdir, FLAGS.step, overrides, average=FLAGS.weights == "average")
    trained_of_averaged = run.config.ema_decay > 0 and not run.averaged
    stem = evaluation.output_stem(
      FLAGS.workdir,
      run.config.eval_split,
      run.step,
      run.config.input.eval_crops,
      max_examples=FLAGS.max_examples,
      trained_of_averaged=trained_of_averaged,
    )
    evaluation.output_paths(stem, overwrite=FLAGS.overwrite)  # refused before the evaluation, not after
    report = evaluation.evaluate(run)
    print(evaluation.format_report(report))
    print("wrote " + " and ".join(evaluation.write(report, stem, overwrite=FLAGS.overwrite)))


if __name__ == "__main__":
  cli.run(main, define_flags)
