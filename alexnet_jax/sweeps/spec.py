"""Sweeps as data: axes of labelled config overrides, combined by product or zip.

A sweep is a base config file, overrides shared by every run, and a list of :class:`Run` s. Each
run carries human-readable ``labels`` (what the report groups and plots by, e.g. ``lrn="within"``,
``dropout=0.25``, ``seed=1``) and the ``overrides`` that ``alexnet_jax.main`` receives as
``--config.FIELD=VALUE`` flags. Sweep definitions live in ``experiments/ablations.py``; the runner is
``launch/sweep.py``.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run of a sweep."""

  labels: Mapping[str, Any]
  overrides: Mapping[str, Any]

  @property
  def name(self) -> str:
    """Workdir name, e.g. ``lrn=within,dropout=0.25,seed=1``: readable and unique per labels."""
    parts = [f"{_slug(k)}={_slug(_format(v))}" for k, v in self.labels.items()]
    return ",".join(parts) or "base"


@dataclasses.dataclass(frozen=True)
class Claim:
  """A claim of the paper, tested by comparing two cells of a sweep seed by seed.

  ``baseline`` and ``treatment`` are labels (without the seed) that pick one cell each, e.g.
  ``{"lrn": "off", "dropout": 0.5}`` and ``{"lrn": "across", "dropout": 0.5}``. ``kind="difference"``
  tests ``treatment - baseline`` of ``metric`` against 0 with the sign the paper claims
  (``expected_sign=-1``: the treatment lowers it); ``kind="ratio"`` tests ``treatment / baseline``
  against 1 (``expected_sign=+1``: the treatment raises it), e.g. the steps to converge.
  ``paper`` is the effect the paper reports, in the metric's own units, printed beside ours.
  """

  name: str
  baseline: Mapping[str, Any]
  treatment: Mapping[str, Any]
  metric: str = "eval_top1_error"
  expected_sign: int = -1
  kind: str = "difference"
  paper: float | None = None

  def __post_init__(self):
    if self.kind not in ("difference", "ratio") or self.expected_sign not in (-1, 1):
      raise ValueError(f"claim {self.name!r}: kind must be 'difference' or 'ratio', expected_sign -1 or +1")


@dataclasses.dataclass(frozen=True)
class Sweep:
  """A base config, overrides every run shares, and the runs."""

  config: str
  runs: Sequence[Run]
  base_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  # Labels picking the seed-0 runs whose train/test curves the report draws; a tuple value allows
  # several, e.g. {"lrn": "across", "dropout": (0.0, 0.5)}. Empty: the report chooses.
  curves: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  # The paper's claims this sweep tests; the report gives each a paired 95 % interval and a verdict.
  claims: Sequence[Claim] = ()
  # The train loss whose first crossing counts as "converged" (the report's steps-to-converge column).
  convergence_train_loss: float | None = None

  def __post_init__(self):
    names = [run.name for run in self.runs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
      raise ValueError(f"sweep has runs with identical labels: {duplicates}")

  def overrides_of(self, run: Run) -> dict[str, Any]:
    """Everything ``main`` gets for ``run``: the shared overrides, then the run's own."""
    return {**self.base_overrides, **run.overrides}


Axis = list  # a list of Runs, each a single labelled choice


def axis(label: str, field: str | None = None, values: Iterable[Any] | Mapping[str, Mapping] = ()) -> Axis:
  """One sweep dimension.

  ``axis("dropout", "model.dropout_rate", [0.0, 0.5])`` sets one field to each value.
  ``axis("lrn", values={"off": {"model.lrn": False}, "within": {...}})`` names several
  fields per choice (``field`` is then None).
  """
  if isinstance(values, Mapping):
    if field is not None:
      raise ValueError("axis(): give either a field and plain values, or a mapping of labelled overrides")
    return [Run({label: name}, dict(overrides)) for name, overrides in values.items()]
  if field is None:
    raise ValueError(f"axis({label!r}): plain values need the config field they set")
  return [Run({label: value}, {field: value}) for value in values]


def seeds(count: int, field: str = "seed", start: int = 0) -> Axis:
  """Repeats over ``count`` seeds."""
  return axis("seed", field, range(start, start + count))


def product(*axes: Axis) -> list[Run]:
  """Every combination of the axes' choices (the first axis varies slowest)."""
  return [_merge(combo) for combo in itertools.product(*axes)]


def zip_axes(*axes: Axis) -> list[Run]:
  """The i-th choice of every axis together; the axes must have the same length."""
  lengths = {len(a) for a in axes}
  if len(lengths) > 1:
    raise ValueError(f"zip_axes(): axes have different lengths {sorted(lengths)}")
  return [_merge(combo) for combo in zip(*axes)]


def concat(*run_lists: Sequence[Run]) -> list[Run]:
  return [run for runs in run_lists for run in runs]


def override_flags(overrides: Mapping[str, Any]) -> list[str]:
  """``--config.FIELD=VALUE`` flags in the syntax ml_collections' config flags parse."""
  return [f"--config.{field}={_format(value)}" for field, value in overrides.items()]


def _merge(runs: Iterable[Run]) -> Run:
  labels, overrides = {}, {}
  for run in runs:
    clash = set(overrides) & set(run.overrides)
    if clash:
      raise ValueError(f"two sweep axes set the same fields: {sorted(clash)}")
    labels.update(run.labels)
    overrides.update(run.overrides)
  return Run(labels, overrides)


def _format(value: Any) -> str:
  if isinstance(value, (tuple, list)):
    return "(" + ",".join(_format(v) for v in value) + ("," if len(value) == 1 else "") + ")"
  return str(value)


def _slug(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9._+-]+", "_", str(text))
