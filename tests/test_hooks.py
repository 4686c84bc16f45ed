"""The training loop's cadence hooks: which run after a step, in which order, and the job before them."""

from alexnet_jax.train import hooks


def _recording_hooks(calls, stop_after=None):
  """Log every 2, evaluate every 3, save every 4 and on a stop; ``stop_after``: a stop is requested
  while the hook of that name runs."""
  requested = []

  def job(name):
    def run(step):
      calls.append((name, step))
      if name == stop_after:
        requested.append(True)

    return run

  return hooks.Hooks(
    [
      hooks.Hook("log", job("log"), every=(2,)),
      hooks.Hook("eval", job("eval"), every=(3,)),
      hooks.Hook("rate", job("rate"), every=(2, 3)),
      hooks.Hook("save", job("save"), every=(4,), on_stop=True),
      hooks.Hook("stop", job("stop"), at_last=False, on_stop=True),
    ],
    before_any=job("sync"),
    stopping=lambda: bool(requested),
  )


def test_hooks_run_at_their_cadences_in_order_after_one_synchronisation():
  calls = []
  cadence = _recording_hooks(calls)
  for step in range(1, 8):
    cadence.after_step(step, last=step == 7)
  assert calls == [
    ("sync", 2), ("log", 2), ("rate", 2),
    ("sync", 3), ("eval", 3), ("rate", 3),
    ("sync", 4), ("log", 4), ("rate", 4), ("save", 4),
    ("sync", 6), ("log", 6), ("eval", 6), ("rate", 6),
    ("sync", 7), ("log", 7), ("eval", 7), ("rate", 7), ("save", 7),
  ]  # fmt: skip


def test_a_stop_requested_while_a_hook_runs_makes_the_save_and_stop_hooks_due_at_that_step():
  calls = []
  cadence = _recording_hooks(calls, stop_after="eval")
  cadence.after_step(1, last=False)
  cadence.after_step(3, last=False)
  assert calls == [("sync", 3), ("eval", 3), ("rate", 3), ("save", 3), ("stop", 3)]


def test_a_cadence_of_zero_never_falls_due():
  assert not hooks.Hook("never", print, every=(0,), at_last=False).is_due(6, last=True, stopping=False)
  assert hooks.Hook("last", print, every=(0,)).is_due(7, last=True, stopping=False)
