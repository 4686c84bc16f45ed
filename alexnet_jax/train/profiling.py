"""A ``jax.profiler`` trace of a window of train steps (``config.profile_steps="A:B"``), for TensorBoard.

Steps are numbered as the log lines and the checkpoints number them: step n is the n-th train step
(the one that takes ``state.step`` from n-1 to n). ``"A:B"`` traces steps A, A+1, ..., B-1: a
half-open window like a Python slice, B-A steps. Step 1 includes the compilation; start at 2 or
later to see steady-state steps. Each step runs inside ``StepTraceAnnotation("train", step_num=n)``,
which is how the profile tab finds the step boundaries, and the trace stops only once the last
step's outputs are ready, so it holds whole steps. It is written where TensorBoard's profile plugin
looks: ``LOGDIR/plugins/profile/<time>/<host>.xplane.pb``.
"""

from __future__ import annotations

import contextlib
import re

import jax
from absl import logging

STEP_NAME = "train"  # the StepTraceAnnotation's name: the trace viewer's step rows


def parse_window(text: str) -> tuple[int, int] | None:
  """``(A, B)`` from ``"A:B"`` with 1 <= A < B; None for ``""`` (no profiling). Else ValueError."""
  if text == "":
    return None
  match = re.fullmatch(r"([0-9]+):([0-9]+)", text)
  if not match or not 1 <= int(match[1]) < int(match[2]):
    raise ValueError(f"profile window {text!r} is not 'A:B' with integers 1 <= A < B")
  return int(match[1]), int(match[2])


def is_window(value) -> bool:
  """The config rule: ``""`` or a window :func:`parse_window` accepts."""
  if not isinstance(value, str):
    return False
  try:
    parse_window(value)
  except ValueError:
    return False
  return True


class StepProfiler:
  """Context manager around the train loop that traces the steps of ``window`` into ``logdir``.

  The loop wraps each step in :meth:`step` and reports its outputs to :meth:`after_step`. Leaving
  the context (the end of training, a preemption, an error) stops a trace still running, so the
  profiler is never left on and what was traced is written.
  """

  def __init__(self, window: str, logdir: str, *, last_step: int):
    parsed = parse_window(window)
    self._first, self._end = parsed or (0, 0)
    self._last = min(self._end - 1, last_step)  # the run may end inside the window
    self._logdir, self._active = logdir, False
    if parsed and self._end - 1 > last_step:
      logging.warning("profile_steps=%s ends after the run's last step %d: tracing up to it", window, last_step)

  def __enter__(self) -> StepProfiler:
    return self

  def __exit__(self, *exc_info) -> None:
    if self._active:
      logging.warning("Training left the profile window early: stopping the trace")
      self._stop()

  def step(self, number: int):
    """The context to run step ``number`` in: starts the trace at the window's first step trained."""
    if not self._active and self._first <= number <= self._last:
      logging.info("Profiling steps %d to %d into %s", number, self._last, self._logdir)
      jax.profiler.start_trace(self._logdir)
      self._active = True
    if self._active:
      return jax.profiler.StepTraceAnnotation(STEP_NAME, step_num=number)
    return contextlib.nullcontext()

  def after_step(self, number: int, outputs) -> None:
    """Stops the trace after the window's last step, once ``outputs`` (that step's results) are ready."""
    if self._active and number >= self._last:
      jax.block_until_ready(outputs)
      self._stop()
      logging.info("Wrote the profile of steps up to %d to %s", number, self._logdir)

  def _stop(self) -> None:
    self._active = False
    jax.profiler.stop_trace()
