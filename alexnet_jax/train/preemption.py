"""SIGTERM and SIGINT (a preemption, Ctrl-C) as a request to checkpoint and stop, not a crash.

Two phases, so that a signal at any moment exits with :data:`EXIT_PREEMPTED` and leaves what was
saved intact:

* from the top of ``main`` (before the slow imports, data preparation, compilation) until the
  training loop takes over, :func:`exit_on_signals` makes a signal end the process at once with
  that status (``os._exit`` after the :data:`EARLY_EXIT_CLEANUPS`, e.g. releasing the workdir
  lock: an exception raised inside a half-done C extension import can crash the interpreter or be
  swallowed by a broad ``except``). Nothing is being saved then, and every checkpoint already
  written stays as it was;
* inside :class:`StopRequests` (the loop, its saves and evaluations, the final summary) the signals
  only set a flag; the loop polls it after each step, saves a checkpoint at that step, flushes
  TensorBoard and raises :class:`Preempted`, which ``main`` turns into the same exit status. A
  second Ctrl-C while stopping interrupts at once (Python's default), for a user who does not want
  to wait for the save.

This module imports only the standard library, so that ``main`` can install its handler first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable

# EX_TEMPFAIL from sysexits.h: "temporary failure, try again" -- rerunning resumes the run.
EXIT_PREEMPTED = 75
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
  """Training stopped on a signal after checkpointing ``step`` (or, with ``saved=False``, with the
  checkpoint of ``step`` it had restored untouched, before training resumed)."""

  def __init__(self, step: int, signal_name: str, *, saved: bool = True):
    what = f"after saving a checkpoint at step {step}" if saved else f"before training resumed from step {step}"
    super().__init__(f"stopped by {signal_name} {what}; rerun the same command to resume")
    self.step, self.signal_name, self.saved = step, signal_name, saved


# Run (newest first) when a signal ends the process before the loop took over.
EARLY_EXIT_CLEANUPS: list[Callable[[], None]] = []


def exit_on_signals() -> None:
  """Until a :class:`StopRequests` takes over: SIGTERM/SIGINT print one line and exit 75 at once."""
  if threading.current_thread() is not threading.main_thread():
    return
  for signum in SIGNALS:
    signal.signal(signum, _exit_now)


def _exit_now(signum, frame) -> None:
  del frame
  name = signal.Signals(signum).name
  print(
    f"stopped by {name} before training started; the checkpoints saved so far are untouched; "
    "rerun the same command to resume",
    file=sys.stderr,
    flush=True,
  )
  for cleanup in reversed(EARLY_EXIT_CLEANUPS):
    try:
      cleanup()
    except Exception:  # noqa: BLE001 -- exiting anyway
      pass
  os._exit(EXIT_PREEMPTED)


@contextlib.contextmanager
def signal_handlers(handler: Callable):
  """``handler`` for SIGTERM and SIGINT while inside; the previous handlers again after. Only the
  main thread may install handlers: elsewhere this changes nothing."""
  previous = {}
  if threading.current_thread() is threading.main_thread():
    for signum in SIGNALS:
      previous[signum] = signal.signal(signum, handler)
  try:
    yield
  finally:
    for signum, old in previous.items():
      signal.signal(signum, old)


class StopRequests:
  """Context manager: records SIGTERM/SIGINT instead of dying; restores the old handlers on exit."""

  def __init__(self):
    self.signal_name: str | None = None
    self._handlers = signal_handlers(self._record)

  @property
  def requested(self) -> bool:
    return self.signal_name is not None

  def __enter__(self) -> StopRequests:
    self._handlers.__enter__()
    return self

  def __exit__(self, *exc_info) -> None:
    self._handlers.__exit__(*exc_info)

  def _record(self, signum, frame) -> None:
    del frame
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt  # a second Ctrl-C: stop now, without waiting for the save
    self.signal_name = signal.Signals(signum).name
