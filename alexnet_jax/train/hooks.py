"""Cadence hooks: the jobs a training loop does between its steps, each at its own cadence.

A :class:`Hook` is a job (log, evaluate, save, ...) and when it is due after a step: every ``N``
steps for each ``N`` of its ``every``, after the run's last step (``at_last``), and when a stop was
requested (``on_stop``). :class:`Hooks` runs the due ones in their order; before the first of them it
runs its ``before_any`` job, once (the loop's divergence check: the moment it synchronises with the
devices anyway). The loop then reads like the procedure: for each step, train; then each hook due.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence


@dataclasses.dataclass(frozen=True)
class Hook:
  """``run(step)`` after each step that is a multiple of one of ``every``, the last step
  (``at_last``), and any step after which a stop was requested (``on_stop``)."""

  name: str
  run: Callable[[int], None]
  every: tuple[int, ...] = ()
  at_last: bool = True
  on_stop: bool = False

  def is_due(self, step: int, *, last: bool, stopping: bool) -> bool:
    return any(step % n == 0 for n in self.every if n > 0) or (self.at_last and last) or (self.on_stop and stopping)


@dataclasses.dataclass(frozen=True)
class Hooks:
  """The loop's hooks in the order they run, the job that precedes any of them, and whether a stop
  was requested (asked afresh for each hook: a signal may come while an earlier one runs)."""

  hooks: Sequence[Hook]
  before_any: Callable[[int], None]
  stopping: Callable[[], bool] = lambda: False

  def after_step(self, step: int, *, last: bool) -> None:
    """Runs each hook due after ``step``, in order, and ``before_any`` once before the first of them."""
    synchronised = False
    for hook in self.hooks:
      if hook.is_due(step, last=last, stopping=self.stopping()):
        if not synchronised:
          self.before_any(step)
          synchronised = True
        hook.run(step)
