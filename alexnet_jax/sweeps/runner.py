"""Runs a sweep's training jobs locally, a bounded number at a time, or writes a SLURM job array.

Each run gets its own workdir ``ROOT/RUN_NAME``. A run whose ``summary.json`` exists is finished
and skipped; any other run is (re)started with the same workdir, so ``alexnet_jax.main`` resumes it
from its last checkpoint. A failing run is reported with its log and does not stop the others.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent import futures

from alexnet_jax import sweeps, utils

SUMMARY_FILE = "summary.json"
LOG_FILE = "train.log"
MANIFEST_FILE = "sweep.json"
DEFAULT_MAIN = (sys.executable, "-m", "alexnet_jax.main")


@dataclasses.dataclass(frozen=True)
class Job:
  """One run made concrete: where it writes and the command that trains it."""

  run: sweeps.Run
  workdir: str
  command: tuple[str, ...]

  @property
  def finished(self) -> bool:
    return os.path.exists(os.path.join(self.workdir, SUMMARY_FILE))


def plan(sweep: sweeps.Sweep, root: str, main_command: Sequence[str] = DEFAULT_MAIN) -> list[Job]:
  """The jobs of ``sweep`` under ``root``, in sweep order."""
  jobs = []
  for run in sweep.runs:
    workdir = os.path.join(root, run.name)
    command = (
      *main_command,
      f"--workdir={workdir}",
      f"--config={sweep.config}",
      *sweeps.override_flags(sweep.overrides_of(run)),
    )
    jobs.append(Job(run, workdir, command))
  return jobs


def write_manifest(sweep: sweeps.Sweep, jobs: Sequence[Job], root: str) -> str:
  """``ROOT/sweep.json``: every run's labels, overrides and workdir, for the report."""
  os.makedirs(root, exist_ok=True)
  manifest = {
    "config": sweep.config,
    "base_overrides": dict(sweep.base_overrides),
    "runs": [
      {
        "name": job.run.name,
        "labels": dict(job.run.labels),
        "overrides": sweep.overrides_of(job.run),
        "workdir": os.path.abspath(job.workdir),
      }
      for job in jobs
    ],
    "curves": dict(sweep.curves),
    "claims": [dataclasses.asdict(claim) for claim in sweep.claims],
    "convergence_train_loss": sweep.convergence_train_loss,
  }
  path = os.path.join(root, MANIFEST_FILE)
  utils.write_json_atomically(path, manifest, sort_keys=False)  # label order is the report's column order
  return path


def run_locally(jobs: Sequence[Job], *, parallel: int = 1, report: Callable[[str], None] = print) -> list[Job]:
  """Runs the unfinished jobs, ``parallel`` at a time; returns the jobs that failed."""
  todo = [job for job in jobs if not job.finished]
  skipped = len(jobs) - len(todo)
  if skipped:
    report(f"{skipped}/{len(jobs)} runs already finished; skipping them")
  progress = _Progress(len(todo), report)
  failed = []
  with futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
    pending = {pool.submit(_run_job, job): job for job in todo}
    for done in futures.as_completed(pending):
      job, returncode = pending[done], done.result()
      ok = returncode == 0 and job.finished
      if not ok:
        failed.append(job)
      progress.step(job, ok, returncode)
  return failed


def slurm_array_script(jobs: Sequence[Job], root: str, *, parallel: int = 0, sbatch_options: Sequence[str] = ()) -> str:
  """A SLURM job-array script: task i runs line i of ``ROOT/commands.txt``. Returns its path."""
  os.makedirs(root, exist_ok=True)
  commands_path = os.path.abspath(os.path.join(root, "commands.txt"))
  utils.write_text_atomically(commands_path, "".join(shlex.join(job.command) + "\n" for job in jobs))
  limit = f"%{parallel}" if parallel > 0 else ""
  lines = [
    "#!/bin/bash",
    "#SBATCH --job-name=alexnet-sweep",
    f"#SBATCH --array=0-{len(jobs) - 1}{limit}",
    f"#SBATCH --output={os.path.abspath(root)}/slurm-%A_%a.out",
    *[f"#SBATCH {option}" for option in sbatch_options],
    "# Each array task trains one run; finished runs exit at once, unfinished ones resume.",
    "set -euo pipefail",
    f"cd {shlex.quote(os.getcwd())}",
    f'command=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {shlex.quote(commands_path)})',
    'eval "$command"',
  ]
  path = os.path.join(root, "sweep.sbatch")
  utils.write_text_atomically(path, "\n".join(lines) + "\n")
  return path


def _run_job(job: Job) -> int:
  os.makedirs(job.workdir, exist_ok=True)
  with open(os.path.join(job.workdir, LOG_FILE), "ab") as log:
    log.write(f"$ {shlex.join(job.command)}\n".encode())
    log.flush()
    return subprocess.call(job.command, stdout=log, stderr=subprocess.STDOUT)


class _Progress:
  """Runs done / total and an ETA from the mean duration of the runs so far."""

  def __init__(self, total: int, report: Callable[[str], None]):
    self.total, self.done, self.report = total, 0, report
    self.start = time.monotonic()

  def step(self, job: Job, ok: bool, returncode: int) -> None:
    self.done += 1
    elapsed = time.monotonic() - self.start
    eta = elapsed / self.done * (self.total - self.done)
    status = "ok" if ok else f"FAILED (exit {returncode}; log: {os.path.join(job.workdir, LOG_FILE)})"
    self.report(
      f"[{self.done}/{self.total}] {job.run.name}: {status}; "
      f"elapsed {utils.format_duration(elapsed)}, ETA {utils.format_duration(eta)}"
    )
