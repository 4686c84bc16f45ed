"""Command line: the top-5 classes of image files, from a trained run.

  python -m alexnet_jax.predict --workdir=runs/fm shoe.jpg shirt.png
  python -m alexnet_jax.predict --workdir=runs/fm --json photos/*.jpg

PNG, JPEG, GIF, BMP or WebP files, grey or colour, go through the run's own test preprocessing
(see ``alexnet_jax/inference/prediction.py``); the class names are the dataset's. An image of more
than ``prediction.MAX_PIXELS`` (8192 x 8192) is refused before decoding, unless it is a JPEG: those are
decoded at a reduced scale, so memory stays bounded whatever the files.
A file that cannot be read gets one ``error: FILE: ...`` line on stderr, the others are still
predicted, and the exit status is then 1. ``--json`` prints a JSON list instead of text: per file
``{"file", "predictions": [{"label", "name", "probability"}, ...]}`` or ``{"file", "error"}``.
"""

import json
import sys

from absl import flags

from alexnet_jax.inference import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
  """This command's flags; defined when it runs, not when it is imported (several commands
  share flag names, and absl allows one definition per process)."""
  cli.define_run_flags()
  flags.DEFINE_bool("json", False, "Print the predictions as JSON instead of text.")


def main(argv):
  if len(argv) < 2:
    cli.fail("give one or more image files: python -m alexnet_jax.predict --workdir=W IMAGE...")
  from alexnet_jax.inference import trained_run  # pylint: disable=g-import-not-at-top

  with cli.reporting_user_errors():
    cli.prepare_host(FLAGS.workdir)
    from alexnet_jax.inference import prediction  # pylint: disable=g-import-not-at-top

    results = prediction.predict_files(
      trained_run.load(FLAGS.workdir, FLAGS.step, average=FLAGS.weights == "average"), argv[1:]
    )
  for result in results:
    if "error" in result:
      print(f"error: {result['error']}", file=sys.stderr)
  print(json.dumps(results, indent=2) if FLAGS.json else prediction.format_results(results))
  if any("error" in result for result in results):
    sys.exit(1)


if __name__ == "__main__":
  cli.run(main, define_flags)
