"""Runs a sweep's training jobs locally, a bounded number at a time, or writes a SLURM job array.

Each run gets its own workdir ``ROOT/RUN_NAME``. A run whose ``summary.json`` reads is finished
and skipped; any other run is (re)started with the same workdir, so ``alexnet_jax.main`` resumes it
from its last checkpoint. A failing run is reported with its log and does not stop the others.

Stopping: each trainer runs in its own session (process group), so a terminal's Ctrl-C reaches
only the runner. SIGTERM or SIGINT to the runner is forwarded to the running trainers' groups;
the runner launches nothing more, waits for them (they checkpoint and exit 75) and raises
:class:`Stopped`, which ``launch/sweep.py`` turns into exit status 75: rerunning resumes the sweep.
A rerun while an orphaned trainer still runs cannot start a second one in its workdir: the
trainer's workdir lock refuses it (``train/run_dir.py``).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures

from alexnet_jax import outputs, sweeps, utils
from alexnet_jax.train import preemption

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
    """A readable summary.json (a broken one means: run again, the trainer writes it anew)."""
    try:
      utils.read_json_object(os.path.join(self.workdir, SUMMARY_FILE))
    except (OSError, ValueError):
      return False
    return True


class Stopped(Exception):
  """A signal stopped the sweep; the trainers it reached have checkpointed (rerun to resume)."""

  def __init__(self, signal_name: str, stopped: Sequence[Job]):
    names = ", ".join(job.run.name for job in stopped) or "none"
    super().__init__(
      f"sweep stopped by {signal_name}; runs stopped after saving: {names}; rerun the same command to resume"
    )
    self.signal_name = signal_name


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
  outputs.make_folder(root)
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
  # The sweep's own files, rewritten by each run of it; label order is the report's column order.
  outputs.write_json(path, manifest, overwrite=True, sort_keys=False)
  return path


def run_locally(jobs: Sequence[Job], *, parallel: int = 1, report: Callable[[str], None] = print) -> list[Job]:
  """Runs the unfinished jobs, ``parallel`` at a time; returns the jobs that failed.

  Raises :class:`Stopped` after a SIGTERM/SIGINT, once the running trainers have exited.
  """
  todo = [job for job in jobs if not job.finished]
  skipped = len(jobs) - len(todo)
  if skipped:
    report(f"{skipped}/{len(jobs)} runs already finished; skipping them")
  progress = _Progress(len(todo), report)
  failed, stopped = [], []
  with _Trainers() as trainers, futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
    pending = {pool.submit(trainers.run, job): job for job in todo}
    for done in futures.as_completed(pending):
      job, returncode = pending[done], done.result()
      if returncode is None:  # not launched: the sweep is stopping
        continue
      if trainers.signal_name and returncode == EXIT_PREEMPTED:
        stopped.append(job)
        report(f"{job.run.name}: stopped after saving a checkpoint (exit {EXIT_PREEMPTED})")
        continue
      ok = returncode == 0 and job.finished
      if not ok:
        failed.append(job)
      progress.step(job, ok, returncode)
  if trainers.signal_name:
    raise Stopped(trainers.signal_name, stopped)
  return failed


EXIT_PREEMPTED = preemption.EXIT_PREEMPTED  # a trainer's (and the runner's) status after a signal: rerun to resume


class _Trainers:
  """Starts trainers in their own sessions and forwards SIGTERM/SIGINT to the running ones.

  A context manager: inside it (main thread) the runner's handlers record the signal, send it to
  every running trainer's process group and make :meth:`run` launch nothing more.
  """

  def __init__(self):
    self.signal_name: str | None = None
    self._running: set[subprocess.Popen] = set()
    self._lock = threading.Lock()  # a launch and the forwarding never interleave
    self._handlers = preemption.signal_handlers(self._forward)

  def __enter__(self) -> _Trainers:
    self._handlers.__enter__()
    return self

  def __exit__(self, *exc_info) -> None:
    self._handlers.__exit__(*exc_info)

  def _forward(self, signum, frame) -> None:
    del frame
    self.signal_name = signal.Signals(signum).name
    with self._lock:
      for process in self._running:
        try:
          os.killpg(process.pid, signum)
        except ProcessLookupError:  # it has just exited
          pass

  def run(self, job: Job) -> int | None:
    """Trains ``job`` (output appended to its train.log); its exit status, None if not launched."""
    os.makedirs(job.workdir, exist_ok=True)
    with open(os.path.join(job.workdir, LOG_FILE), "ab") as log:
      with self._lock:
        if self.signal_name:
          return None
        log.write(f"$ {shlex.join(job.command)}\n".encode())
        log.flush()
        process = subprocess.Popen(
          job.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=_with_repo_on_path()
        )
        self._running.add(process)
      try:
        return process.wait()
      finally:
        with self._lock:
          self._running.discard(process)


def _with_repo_on_path() -> dict[str, str]:
  """The environment with this repository first on PYTHONPATH: ``python -m alexnet_jax.main`` finds
  the package from whatever directory the sweep was started in."""
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  path = os.environ.get("PYTHONPATH")
  return {**os.environ, "PYTHONPATH": repo + (os.pathsep + path if path else "")}


def slurm_array_script(jobs: Sequence[Job], root: str, *, parallel: int = 0, sbatch_options: Sequence[str] = ()) -> str:
  """A SLURM job-array script: task i runs line i of ``ROOT/commands.txt``. Returns its path."""
  outputs.make_folder(root)
  commands_path = os.path.abspath(os.path.join(root, "commands.txt"))
  outputs.write_text(commands_path, overwrite=True, text="".join(shlex.join(job.command) + "\n" for job in jobs))
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
  outputs.write_text(path, "\n".join(lines) + "\n", overwrite=True)
  return path


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
