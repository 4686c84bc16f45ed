"""Command line: export a trained run's weights for PyTorch or any other framework, or its network as ONNX.

  python -m alexnet_jax.export --workdir=runs/fm --format=torch alexnet_fm.pt
  python -m alexnet_jax.export --workdir=runs/fm --format=npz alexnet_fm.npz
  python -m alexnet_jax.export --workdir=runs/fm --format=onnx alexnet_fm.onnx

``torch`` writes a state_dict that ``alexnet_jax.yardsticks.torch_alexnet.TorchAlexNet`` loads;
``npz`` writes plain float32 arrays in the JAX layout; ``onnx`` the eval-mode network as an ONNX
graph (NHWC ``images`` in, ``logits`` out), checked with onnxruntime before it is written. Each also
writes ``OUT.json`` (the step, the model options and the input the network expects). Names and
layouts: ``alexnet_jax/inference/export.py``. An existing OUT is replaced only with ``--overwrite``;
a run's own files never (``alexnet_jax/outputs.py``). PyTorch is needed only for ``--format=torch``;
jax2onnx and onnxruntime (``requirements-onnx.txt``) only for ``--format=onnx``.
"""

from absl import flags

from alexnet_jax.inference import cli

FLAGS = flags.FLAGS


def define_flags() -> None:
  """This command's flags; defined when it runs, not when it is imported (several commands
  share flag names, and absl allows one definition per process)."""
  from alexnet_jax.inference.export import FORMATS  # pylint: disable=g-import-not-at-top -- imports flax

  cli.define_run_flags()
  flags.DEFINE_enum(
    "format",
    None,
    list(FORMATS),
    "torch: a TorchAlexNet state_dict; npz: numpy arrays; onnx: the network's ONNX graph.",
  )
  flags.mark_flags_as_required(["format"])
  cli.define_overwrite_flag()


def main(argv):
  from alexnet_jax.inference import export, trained_run  # pylint: disable=g-import-not-at-top

  if len(argv) != 2:
    cli.fail(f"give one output file: python -m alexnet_jax.export --workdir=W --format={'|'.join(export.FORMATS)} OUT")

  with cli.reporting_user_errors():
    cli.prepare_host(FLAGS.workdir)
    export.output_paths(argv[1], overwrite=FLAGS.overwrite)  # refused before the seconds of loading
    run = trained_run.load(FLAGS.workdir, FLAGS.step, average=FLAGS.weights == "average")
    paths = export.export(argv[1], run.params, run.config, run.step, FLAGS.format, overwrite=FLAGS.overwrite)
  print(f"wrote {paths[0]} (step {run.step}) and {paths[1]}")


if __name__ == "__main__":
  cli.run(main, define_flags)
