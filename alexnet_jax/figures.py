"""Command line: the paper's Figures 3 and 4 from a trained run, as PNG files.

  python -m alexnet_jax.figures --workdir=runs/fm --out=experiments/figures

Writes ``figure3_conv1_kernels.png`` (conv1's kernels per tower), ``figure4_left.png`` (test images
with their top-5 probability bars) and ``figure4_right.png`` (query test images and the training
images nearest to them in fc7 feature space, searched among the first ``--neighbour_pool`` training
images) into ``--out`` (made if missing; existing figures are replaced only with ``--overwrite``),
saying on stderr as each figure starts. See ``alexnet_jax/inference/figures.py``.
"""

import sys

from absl import flags

from alexnet_jax.inference import cli, figures, trained_run

FLAGS = flags.FLAGS


def define_flags() -> None:
  """This command's flags; defined when it runs, not when it is imported (several commands
  share flag names, and absl allows one definition per process)."""
  cli.define_run_flags()
  flags.DEFINE_string("out", None, "Directory for the PNG files (created if missing).")
  flags.DEFINE_integer(
    "examples",
    8,
    "Figure 4 left: test images shown with their top-5 classes.",
    lower_bound=1,
    upper_bound=figures.MAX_EXAMPLES,
  )
  flags.DEFINE_integer(
    "queries", 5, "Figure 4 right: query test images (one row each).", lower_bound=1, upper_bound=figures.MAX_QUERIES
  )
  flags.DEFINE_integer(
    "neighbour_pool", 10_000, "Figure 4 right: training images searched for nearest neighbours.", lower_bound=1
  )
  cli.define_overwrite_flag()
  flags.mark_flags_as_required(["out"])


def main(argv):
  cli.no_arguments(argv)
  with cli.reporting_user_errors():
    cli.prepare_host(FLAGS.workdir)
    figures.output_paths(FLAGS.out, overwrite=FLAGS.overwrite)  # refused before the run is loaded
    run = trained_run.load(FLAGS.workdir, FLAGS.step, average=FLAGS.weights == "average")
    paths = figures.write_all(
      run,
      FLAGS.out,
      examples=FLAGS.examples,
      queries=FLAGS.queries,
      pool=FLAGS.neighbour_pool,
      overwrite=FLAGS.overwrite,
      report=lambda message: print(message, file=sys.stderr, flush=True),
    )
  print("\n".join(f"wrote {path}" for path in paths))


if __name__ == "__main__":
  cli.run(main, define_flags)
