"""Runs an ablation sweep from experiments/ablations.py, then writes its report.

  python launch/sweep.py --sweep=overfit                     # the default set: runs/sweeps/overfit/ ...
  python launch/sweep.py --sweep=overfit_pooling             # ... and runs/sweeps/overfit_pooling/
  python launch/sweep.py --sweep=overfit --scale=gpu         # the larger variant for a GPU
  python launch/sweep.py --sweep=lrn_dropout                 # the earlier under-fitting scale
  python launch/sweep.py --sweep=smoke --parallel=2          # a tiny end-to-end check
  python launch/sweep.py --sweep=pooling --slurm             # writes a SLURM job array instead
  python launch/sweep.py --sweep=lrn_dropout --report_only   # re-aggregate what has finished

Re-running skips finished runs and resumes unfinished ones. Exit status 1 if any run failed.
SIGTERM or Ctrl-C stops the running trainers (each saves a checkpoint), launches nothing more and
exits with status 75; rerunning resumes.
"""

import importlib.util
import inspect
import os
import shlex
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from alexnet_jax.sweeps import report, runner  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("sweep", "smoke", "Name of a sweep in --sweeps_file.")
flags.DEFINE_string("sweeps_file", "experiments/ablations.py", "Python file with a SWEEPS dict of sweep functions.")
flags.DEFINE_string("root", None, "Folder for the sweep's runs (default runs/sweeps/SWEEP).")
flags.DEFINE_integer("seeds", None, "Seeds per cell (default: the sweep's own).")
flags.DEFINE_string("scale", None, "The sweep's scale, e.g. 'cpu' (default) or 'gpu' for the over-fitting sweeps.")
flags.DEFINE_integer("parallel", 1, "Runs at a time locally (1 fits a 2-core machine: each run uses both cores).")
flags.DEFINE_bool("slurm", False, "Write ROOT/sweep.sbatch (a job array) instead of running locally.")
flags.DEFINE_multi_string("sbatch_option", [], "Extra '#SBATCH' lines for --slurm, e.g. --sbatch_option=--gres=gpu:1.")
flags.DEFINE_bool("report_only", False, "Only aggregate the runs that have finished.")
flags.DEFINE_string("main_command", None, "Command that trains one run (default: this python -m alexnet_jax.main).")


def load_sweep(path: str, name: str, num_seeds: int | None, scale: str | None = None):
  """The sweep ``name`` of the sweeps file, with the seed count and scale asked for (else its own)."""
  spec = importlib.util.spec_from_file_location("alexnet_sweeps", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if name not in module.SWEEPS:
    raise app.UsageError(f"--sweep={name!r} is not in {path}; known sweeps: {sorted(module.SWEEPS)}")
  factory = module.SWEEPS[name]
  options = {"num_seeds": num_seeds} if num_seeds is not None else {}
  if scale is not None:
    if "scale" not in inspect.signature(factory).parameters:
      raise app.UsageError(f"--scale: sweep {name!r} has one scale only")
    scales = getattr(module, "SCALES", {})
    if scale not in scales:
      raise app.UsageError(f"--scale={scale!r} is not one of {sorted(scales)}")
    options["scale"] = scale
  return factory(**options)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  sweep = load_sweep(FLAGS.sweeps_file, FLAGS.sweep, FLAGS.seeds, FLAGS.scale)
  root = FLAGS.root or os.path.join("runs", "sweeps", FLAGS.sweep)
  main_command = shlex.split(FLAGS.main_command) if FLAGS.main_command else runner.DEFAULT_MAIN
  jobs = runner.plan(sweep, root, main_command)
  runner.write_manifest(sweep, jobs, root)
  if FLAGS.slurm:
    path = runner.slurm_array_script(
      jobs, root, parallel=FLAGS.parallel if FLAGS.parallel > 1 else 0, sbatch_options=FLAGS.sbatch_option
    )
    print(f"wrote {path} ({len(jobs)} tasks); submit with: sbatch {path}")
    print(f"aggregate afterwards with: python launch/sweep.py --sweep={FLAGS.sweep} --root={root} --report_only")
    return 0
  try:
    failed = [] if FLAGS.report_only else runner.run_locally(jobs, parallel=FLAGS.parallel)
  except runner.Stopped as stopped:
    print(stopped, file=sys.stderr)
    return runner.EXIT_PREEMPTED
  for name, path in report.write_report(root).items():
    print(f"{name}: {path}")
  if failed:
    print(f"{len(failed)} run(s) failed: " + ", ".join(job.run.name for job in failed), file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
