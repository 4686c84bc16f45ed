"""The statistics a sweep report rests on: 95 % intervals, paired differences over seeds, verdicts.

Runs of two cells that share a seed share their initialisation and their data order, so the
difference between two cells is measured per seed and the interval is the paired one (Student's t
over the per-seed differences): it is much narrower than the two cells' own intervals would
suggest when the seed explains much of the spread.

A claim's verdict follows from the interval of its paired difference:

* "agrees": the interval excludes 0 on the side the paper claims;
* "disagrees": it excludes 0 on the other side;
* "not resolved": it contains 0 (the effect is smaller than this sweep can see).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class Interval:
  """A mean with its two-sided 95 % Student-t interval over ``n`` values."""

  mean: float
  low: float
  high: float
  n: int

  @property
  def half_width(self) -> float:
    return (self.high - self.low) / 2

  def format(self, scale: float = 1.0, digits: int = 2) -> str:
    if self.n == 0:
      return "-"
    if self.n == 1 or not math.isfinite(self.half_width):
      return f"{self.mean * scale:.{digits}f}"
    return f"{self.mean * scale:.{digits}f} +- {self.half_width * scale:.{digits}f}"


def mean_interval(values: Sequence[float]) -> Interval:
  """Mean and 95 % interval of ``values`` (an infinitely wide one for a single value)."""
  values = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
  if len(values) == 0:
    return Interval(math.nan, math.nan, math.nan, 0)
  mean = float(values.mean())
  if len(values) == 1:
    return Interval(mean, -math.inf, math.inf, 1)
  half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
  return Interval(mean, mean - half, mean + half, len(values))


def paired_difference(treatment: Mapping[int, float], baseline: Mapping[int, float]) -> Interval:
  """Interval of ``treatment - baseline`` over the seeds both have (seed -> value mappings)."""
  seeds = sorted(set(treatment) & set(baseline))
  return mean_interval([treatment[s] - baseline[s] for s in seeds])


def verdict(difference: Interval, expected_sign: int) -> str:
  """ "agrees", "disagrees" or "not resolved" for a difference the paper says has ``expected_sign``."""
  if difference.n < 2 or not (difference.low > 0 or difference.high < 0):
    return "not resolved"
  return "agrees" if (difference.mean > 0) == (expected_sign > 0) else "disagrees"


def steps_to_reach(curve: Sequence[tuple[int, float]], threshold: float) -> int | None:
  """The first logged step at which ``curve`` ((step, value) pairs) is at or below ``threshold``."""
  for step, value in curve:
    if value <= threshold:
      return int(step)
  return None


def overfits(eval_losses: Sequence[float], final_train_loss: float, train_loss_at_most: float = 0.05) -> bool:
  """The over-fitting regime the dropout claim needs: train loss near 0 and the test loss above its
  own minimum at the end (it has turned upwards)."""
  return bool(eval_losses) and final_train_loss <= train_loss_at_most and eval_losses[-1] > min(eval_losses)
