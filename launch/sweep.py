"""Runs an ablation sweep from experiments/ablations.py, then writes its report.

  python launch/sweep.py --sweep=overfit                     # the default set: runs/sweeps/overfit/ ...
  python launch/sweep.py --sweep=overfit_pooling             # ... and runs/sweeps/overfit_pooling/
  python launch/sweep.py --sweep=overfit --scale=gpu         # the larger variant for a GPU
  python launch/sweep.py --sweep=lrn_dropout                 # the earlier under-fitting scale
  python launch/sweep.py --sweep=smoke --parallel=2          # a tiny end-to-end check
  python launch/sweep.py --sweep=pooling --slurm             # writes a SLURM job array instead
  python launch/sweep.py --sweep=lrn_dropout --report_only   # re-aggregate what has finished

Re-running skips finished runs and resumes unfinished ones. Exit status 1 if any run failed. It runs
from any directory: the sweeps file and the configs are found in the repository. A bad flag, a
--root that is a file, a --report_only on a folder without a sweep, or a change of --seeds or
--scale that would drop finished runs from a sweep's report ends with one ``error:`` line, exit 1.
SIGTERM or Ctrl-C stops the running trainers (each saves a checkpoint), launches nothing more and
exits with status 75; rerunning resumes.
"""

import inspect
import os
import shlex
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from alexnet_jax import errors, flag_errors, outputs  # noqa: E402
from alexnet_jax.sweeps import report, runner  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("sweep", "smoke", "Name of a sweep in --sweeps_file.")
flags.DEFINE_string(
  "sweeps_file",
  os.path.join(flag_errors.REPO, "experiments", "ablations.py"),
  "Python file with a SWEEPS dict of sweep functions (a relative path missing here is looked up in the repository).",
)
flags.DEFINE_string("root", None, "Folder for the sweep's runs (default runs/sweeps/SWEEP).")
flags.DEFINE_integer("seeds", None, "Seeds per cell (default: the sweep's own).", lower_bound=1)
flags.DEFINE_string("scale", None, "The sweep's scale, e.g. 'cpu' (default) or 'gpu' for the over-fitting sweeps.")
flags.DEFINE_integer(
  "parallel", 1, "Runs at a time locally (1 fits a 2-core machine: each run uses both cores).", lower_bound=1
)
flags.DEFINE_bool("slurm", False, "Write ROOT/sweep.sbatch (a job array) instead of running locally.")
flags.DEFINE_multi_string("sbatch_option", [], "Extra '#SBATCH' lines for --slurm, e.g. --sbatch_option=--gres=gpu:1.")
flags.DEFINE_bool("report_only", False, "Only aggregate the runs that have finished.")
flags.DEFINE_string("main_command", None, "Command that trains one run (default: this python -m alexnet_jax.main).")


class SweepError(errors.UserError):
  """A sweep that cannot be run or reported as asked; the message says why."""


def load_sweep(path: str, name: str, num_seeds: int | None, scale: str | None = None):
  """The sweep ``name`` of the sweeps file, with the seed count and scale asked for (else its own)."""
  module = flag_errors.load_python_file(path, f"--sweeps_file={path}")
  sweeps = getattr(module, "SWEEPS", None)
  if not isinstance(sweeps, dict):
    raise SweepError(f"--sweeps_file={path} defines no SWEEPS dict")
  if name not in sweeps:
    raise SweepError(f"--sweep={name!r} is not in {path}; known sweeps: {', '.join(sorted(sweeps))}")
  factory = sweeps[name]
  options = {"num_seeds": num_seeds} if num_seeds is not None else {}
  if scale is not None:
    if "scale" not in inspect.signature(factory).parameters:
      raise SweepError(f"--scale: sweep {name!r} has one scale only")
    scales = getattr(module, "SCALES", {})
    if scale not in scales:
      raise SweepError(f"--scale={scale!r} is not one of {', '.join(sorted(scales))}")
    options["scale"] = scale
  return factory(**options)


def check_report_root(root: str) -> None:
  """--report_only needs a folder that holds a sweep: nothing is created for it."""
  manifest = os.path.join(root, runner.MANIFEST_FILE)
  if not os.path.isfile(manifest):
    raise SweepError(f"--root={root} holds no sweep (no {manifest}); run the sweep first, or give its --root")


def check_keeps_finished_runs(jobs, root: str) -> None:
  """Refuses a plan that would drop finished runs of the sweep already in ``root`` from its report
  (a smaller --seeds, another --scale): what is on disk is never reported as fewer runs."""
  if not os.path.isfile(os.path.join(root, runner.MANIFEST_FILE)):
    return
  try:
    finished = {result.name for result in report.load_results(root) if result.summary is not None}
  except (OSError, ValueError, KeyError, TypeError) as error:
    raise SweepError(
      f"{os.path.join(root, runner.MANIFEST_FILE)} cannot be read ({error}); restore it, or move it away to start anew"
    ) from error
  dropped = sorted(finished - {job.run.name for job in jobs})
  if dropped:
    raise SweepError(
      f"--root={root} holds {len(dropped)} finished run(s) this command would drop from its report "
      f"({', '.join(dropped[:3])}{', ...' if len(dropped) > 3 else ''}); give --seeds and --scale that "
      "include them, or a new --root"
    )


def main(argv):
  if len(argv) > 1:
    raise SweepError(f"unexpected arguments: {' '.join(argv[1:])}")
  sweep = load_sweep(flag_errors.in_repo(FLAGS.sweeps_file), FLAGS.sweep, FLAGS.seeds, FLAGS.scale)
  root = FLAGS.root or os.path.join("runs", "sweeps", FLAGS.sweep)
  if FLAGS.report_only:
    check_report_root(root)
  outputs.make_folder(root)
  main_command = shlex.split(FLAGS.main_command) if FLAGS.main_command else runner.DEFAULT_MAIN
  jobs = runner.plan(sweep, root, main_command)
  if not FLAGS.report_only:
    check_keeps_finished_runs(jobs, root)
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


def main_reporting_errors(argv) -> int:
  """:func:`main` with every failure the user can act on as one ``error:`` line and exit status 1."""
  try:
    return main(argv)
  except errors.UserError as error:
    print(f"error: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main_reporting_errors(argv)), flags_parser=flag_errors.parse_flags)
