"""Command line: a reference AlexNet's trained weights made a run directory.

  python -m alexnet_jax.import_weights --workdir=runs/bvlc bvlc_alexnet.caffemodel
  python -m alexnet_jax.import_weights --workdir=runs/bvlc --mean=ilsvrc_2012_mean.binaryproto bvlc_alexnet.caffemodel
  python -m alexnet_jax.import_weights --workdir=runs/torchvision alexnet-owt-7be5be79.pth

BVLC's ``.caffemodel`` (either of Caffe's layouts) and torchvision's ``.pth`` state dict are read
without Caffe or PyTorch (``alexnet_jax/weights/``); the run then holds the reference's net, its test
preprocessing and where the weights came from (``imported.json``), and ``evaluate``, ``predict``,
``figures`` and ``export`` use it like a trained run (docs/pretrained.md). A file that cannot be read
or whose layers do not fit ends with one ``error:`` line and exit status 1, and nothing is written.
"""

import json
import sys

from absl import flags

from alexnet_jax.inference import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
  """This command's flags; defined when it runs, not when it is imported."""
  flags.DEFINE_string("workdir", None, "New directory for the imported run (must not exist).")
  flags.DEFINE_string(
    "mean", None, "Caffe's mean image (ilsvrc_2012_mean.binaryproto) to subtract instead of the mean pixel."
  )
  flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) != 2:
    cli.fail("give one weight file: python -m alexnet_jax.import_weights --workdir=DIR FILE (.caffemodel or .pth)")
  with cli.reporting_user_errors():
    from alexnet_jax.weights import imported_run  # pylint: disable=g-import-not-at-top -- imports JAX

    provenance = imported_run.write(FLAGS.workdir, argv[1], FLAGS.mean)
  print(json.dumps(provenance, indent=2), file=sys.stderr)
  print(f"wrote {FLAGS.workdir}")


if __name__ == "__main__":
  cli.run(main, define_flags)
