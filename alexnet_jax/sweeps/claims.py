"""What a sweep says about the paper: per-run over-fitting and convergence numbers, and each claim's
paired 95 % interval and verdict (``statistics.py``), as a markdown section of the report.

Numbers added to every finished run's summary (so the report's table and the claims can use them):

* ``eval_loss_rise``: the final test loss minus its minimum over the run's evaluations (> 0: the
  test loss turned upwards, the mark of over-fitting);
* ``overfits``: 1.0 when the final train loss is <= 0.05 and ``eval_loss_rise > 0``, else 0.0;
* ``steps_to_converge``: the first logged step whose train loss is at or below the sweep's
  ``convergence_train_loss`` (absent when the run never got there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from alexnet_jax.sweeps import statistics

SEED_LABEL = "seed"
# How each metric is printed: (scale, unit, digits).
_UNITS = {
  "eval_top1_error": (100, " points of top-1 error", 2),
  "eval_top5_error": (100, " points of top-5 error", 2),
  "eval_loss": (1, " in test loss", 3),
  "steps_to_converge": (1, "x the steps to converge", 2),
}


def add_derived_metrics(results: Sequence, convergence_train_loss: float | None, read_curves) -> None:
  """Adds ``eval_loss_rise``, ``overfits`` and ``steps_to_converge`` to each finished run's summary.

  ``read_curves(workdir)`` returns the run's TensorBoard scalars (tag -> [(step, value)]).
  """
  for result in results:
    summary = result.summary
    if not summary:
      continue
    losses = [entry["loss"] for entry in summary.get("eval_history", []) if "loss" in entry]
    if losses:
      summary["eval_loss_rise"] = losses[-1] - min(losses)
      final_train = summary.get("train_loss", math.inf)
      summary["overfits"] = float(statistics.overfits(losses, final_train))
    if convergence_train_loss is not None:
      step = statistics.steps_to_reach(read_curves(result.workdir).get("train_loss", []), convergence_train_loss)
      if step is not None:
        summary["steps_to_converge"] = float(step)


def per_seed(results: Sequence, labels: Mapping[str, Any], metric: str) -> dict[int, float]:
  """seed -> ``metric`` of the finished runs whose labels (seed aside) are ``labels``."""
  chosen = {}
  for result in results:
    rest = {k: v for k, v in result.labels.items() if k != SEED_LABEL}
    if result.summary and rest == dict(labels) and metric in result.summary:
      chosen[result.labels.get(SEED_LABEL, 0)] = result.summary[metric]
  return chosen


def evaluate_claim(claim: Mapping[str, Any], results: Sequence) -> dict[str, Any]:
  """The claim's paired interval over seeds, its verdict, and the numbers behind them.

  ``claim`` is a :class:`alexnet_jax.sweeps.Claim` as a dict (as ``sweep.json`` stores it).
  A ratio claim is tested on the per-seed log ratio (a ratio of 2 and one of 1/2 weigh alike)
  and reported as the geometric mean ratio with its interval.
  """
  treatment = per_seed(results, claim["treatment"], claim["metric"])
  baseline = per_seed(results, claim["baseline"], claim["metric"])
  if claim["kind"] == "ratio":
    positive = lambda values: {s: math.log(v) for s, v in values.items() if v > 0}
    interval = statistics.paired_difference(positive(treatment), positive(baseline))
    shown = statistics.Interval(*(math.exp(x) for x in (interval.mean, interval.low, interval.high)), interval.n)
  else:
    interval = statistics.paired_difference(treatment, baseline)
    shown = interval
  return {
    "name": claim["name"],
    "interval": shown,
    "verdict": statistics.verdict(interval, claim["expected_sign"]),
    "seeds": interval.n,
    "treatment": statistics.mean_interval(list(treatment.values())),
    "baseline": statistics.mean_interval(list(baseline.values())),
    "paper": claim.get("paper"),
    "metric": claim["metric"],
    "kind": claim["kind"],
  }


def markdown_section(claims: Sequence[Mapping[str, Any]], results: Sequence) -> str:
  """``## Claims``: one verdict line per claim, with its numbers."""
  if not claims:
    return ""
  lines = ["## Claims", "", "Paired over seeds; intervals are 95 % Student-t intervals.", ""]
  for claim in claims:
    found = evaluate_claim(claim, results)
    scale, unit, digits = _UNITS.get(found["metric"], (1, f" in {found['metric']}", 3))
    interval = found["interval"]
    if found["kind"] == "ratio":
      effect = (
        f"treatment / baseline = {interval.mean:.{digits}f} [{interval.low:.{digits}f}, {interval.high:.{digits}f}]"
      )
      paper = f"; paper: {found['paper']:g}" if found["paper"] is not None else ""
    else:
      effect = (
        f"treatment - baseline = {interval.mean * scale:+.{digits}f}{unit} "
        f"[{interval.low * scale:+.{digits}f}, {interval.high * scale:+.{digits}f}]"
      )
      paper = f"; paper: {found['paper'] * scale:+g}" if found["paper"] is not None else ""
    lines.append(
      f"- **{found['name']}**: {effect} over {found['seeds']} seeds "
      f"(baseline {found['baseline'].format(scale, digits)}, treatment {found['treatment'].format(scale, digits)})"
      f"{paper} -> **{found['verdict']}**"
    )
  return "\n".join(lines) + "\n"
