"""SIGTERM and SIGINT (a preemption, Ctrl-C) as a request to checkpoint and stop, not a crash.

Inside :class:`StopRequests` the signals only set a flag; the training loop polls it after each
step, saves a checkpoint at that step, flushes TensorBoard and raises :class:`Preempted`, which
``main`` turns into exit status :data:`EXIT_PREEMPTED`. A second Ctrl-C while stopping interrupts
at once (Python's default), for a user who does not want to wait for the save.
"""

from __future__ import annotations

import signal
import threading

# EX_TEMPFAIL from sysexits.h: "temporary failure, try again" -- rerunning resumes the run.
EXIT_PREEMPTED = 75
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
  """Training stopped on a signal after checkpointing ``step``."""

  def __init__(self, step: int, signal_name: str):
    super().__init__(
      f"stopped by {signal_name} after saving a checkpoint at step {step}; rerun the same command to resume"
    )
    self.step, self.signal_name = step, signal_name


class StopRequests:
  """Context manager: records SIGTERM/SIGINT instead of dying; restores the old handlers on exit."""

  def __init__(self):
    self.signal_name: str | None = None
    self._previous = {}

  @property
  def requested(self) -> bool:
    return self.signal_name is not None

  def __enter__(self) -> StopRequests:
    if threading.current_thread() is threading.main_thread():  # only it may install handlers
      for signum in SIGNALS:
        self._previous[signum] = signal.signal(signum, self._record)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)

  def _record(self, signum, frame) -> None:
    del frame
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt  # a second Ctrl-C: stop now, without waiting for the save
    self.signal_name = signal.Signals(signum).name
