"""Aggregates a finished sweep: a markdown table, PNG plots, and TensorBoard HParams entries.

Reads ``ROOT/sweep.json`` (written by the runner) and every run's ``summary.json``; curves come from
the runs' TensorBoard event files. Cells are the runs' labels without the seed; each cell reports
mean +- sample std and the 95 % interval over its seeds, and each of the sweep's claims gets a paired
interval and a verdict (``claims.py``, ``statistics.py``).

  python -m alexnet_jax.sweeps.report --root=runs/sweeps/lrn_dropout
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from absl import app, flags

from alexnet_jax import outputs, utils
from alexnet_jax.sweeps import claims, statistics

METRICS = ("eval_top1_error", "eval_top5_error", "eval_loss")
SEED_LABEL = "seed"


@dataclasses.dataclass
class RunResult:
  name: str
  labels: dict
  workdir: str
  summary: dict | None  # None when the run has not finished (or its summary.json cannot be read)
  problem: str | None = None  # why an existing summary.json was not used


@dataclasses.dataclass
class Cell:
  """The runs that share every label but the seed."""

  labels: dict
  runs: list

  def values(self, metric: str) -> list[float]:
    return [r.summary[metric] for r in self.runs if r.summary and metric in r.summary]

  def interval(self, metric: str) -> statistics.Interval:
    """Mean and 95 % interval of ``metric`` over the finished runs that have it."""
    return statistics.mean_interval(self.values(metric))

  def stat(self, metric: str) -> tuple[float, float, int]:
    """(mean, sample std, count) of ``metric`` over the finished runs."""
    values = self.values(metric)
    if not values:
      return math.nan, math.nan, 0
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, math.sqrt(var), len(values)


def _manifest(root: str) -> dict:
  with open(os.path.join(root, "sweep.json")) as f:
    return json.load(f)


def load_results(root: str) -> list[RunResult]:
  results = []
  for run in _manifest(root)["runs"]:
    workdir = run["workdir"] if os.path.isabs(run["workdir"]) else os.path.join(root, run["name"])
    if not os.path.isdir(workdir):  # the sweep folder was moved: runs sit beside sweep.json
      workdir = os.path.join(root, run["name"])
    summary_path = os.path.join(workdir, "summary.json")
    summary, problem = None, None
    if os.path.exists(summary_path):
      try:
        summary = utils.read_json_object(summary_path)
      except (OSError, ValueError) as error:  # a failed run for the report, never the report's failure
        problem = f"{summary_path} cannot be read ({error})"
    results.append(RunResult(run["name"], run["labels"], workdir, summary, problem))
  return results


def group_cells(results: Sequence[RunResult]) -> list[Cell]:
  """Cells in sweep order, keyed by every label except the seed."""
  cells: dict[tuple, Cell] = {}
  for result in results:
    labels = {k: v for k, v in result.labels.items() if k != SEED_LABEL}
    key = tuple(labels.items())
    cells.setdefault(key, Cell(labels, [])).runs.append(result)
  return list(cells.values())


def markdown_table(cells: Sequence[Cell]) -> str:
  """One row per cell: labels, then mean +- std of each metric, seeds finished, minutes per run.

  The train loss (the last logging interval, dropout active) beside the eval loss shows the
  generalisation gap, i.e. how much a cell over-fits.
  """
  label_names = list(cells[0].labels) if cells else []
  header = [
    *label_names,
    "top-1 error (%)",
    "top-5 error (%)",
    "eval loss",
    "train loss",
    "seeds",
    "min/run",
    "top-1 95 % CI",
    "over-fit runs",
    "test-loss rise",
    "steps to converge",
  ]
  rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for cell in cells:
    top1, top5, loss = (cell.stat(m) for m in METRICS)
    minutes = cell.stat("wall_seconds")
    rows.append(
      "| "
      + " | ".join(
        [
          *(str(cell.labels[n]) for n in label_names),
          _pm(top1, 100, 2),
          _pm(top5, 100, 2),
          _pm(loss, 1, 3),
          _pm(cell.stat("train_loss"), 1, 3),
          str(top1[2]),
          f"{minutes[0] / 60:.1f}" if minutes[2] else "-",
          cell.interval("eval_top1_error").format(100, 2),
          _count(cell, "overfits"),
          cell.interval("eval_loss_rise").format(1, 3),
          cell.interval("steps_to_converge").format(1, 0),
        ]
      )
      + " |"
    )
  return "\n".join(rows) + "\n"


def plot_error_vs(cells: Sequence[Cell], x_label: str, path: str, metric: str = "eval_top1_error") -> str:
  """Test error against a numeric label, one line (with std error bars) per other-label combination."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  lines = collections.defaultdict(list)
  for cell in cells:
    rest = ", ".join(f"{k}={v}" for k, v in cell.labels.items() if k != x_label) or "all"
    mean, std, n = cell.stat(metric)
    if n:
      lines[rest].append((float(cell.labels[x_label]), 100 * mean, 100 * std))
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, points in lines.items():
    xs, ys, es = zip(*sorted(points))
    ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=name)
  ax.set_xlabel(x_label)
  ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  outputs.write_figure(path, fig, overwrite=True, dpi=120)  # the sweep's own report: rewritten each time
  plt.close(fig)
  return path


def plot_bars(cells: Sequence[Cell], path: str, metric: str = "eval_top1_error") -> str:
  """Test error per cell as bars with std error bars (for sweeps with no numeric axis)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  names = [", ".join(f"{k}={v}" for k, v in c.labels.items()) for c in cells]
  stats = [c.stat(metric) for c in cells]
  fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(cells)), 4))
  ax.bar(range(len(cells)), [100 * s[0] for s in stats], yerr=[100 * s[1] for s in stats], capsize=4)
  ax.set_xticks(range(len(cells)), names, rotation=15, ha="right")
  ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
  lows = [100 * (s[0] - s[1]) for s in stats if s[2]]
  if lows:
    ax.set_ylim(bottom=max(0.0, min(lows) * 0.9))
  fig.tight_layout()
  outputs.write_figure(path, fig, overwrite=True, dpi=120)  # the sweep's own report: rewritten each time
  plt.close(fig)
  return path


def read_curves(workdir: str) -> dict[str, list[tuple[int, float]]]:
  """Every scalar series in a run's TensorBoard event files: tag -> [(step, value)]."""
  from tensorboard.backend.event_processing import event_accumulator
  from tensorboard.util import tensor_util

  from alexnet_jax.train import summaries

  summaries.tensorboard_without_tensorflow()

  curves: dict[str, dict[int, float]] = collections.defaultdict(dict)
  for events_dir in sorted(
    {os.path.dirname(p) for p in glob.glob(os.path.join(workdir, "**", "events.out.tfevents.*"), recursive=True)}
  ):
    acc = event_accumulator.EventAccumulator(
      events_dir, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0}
    )
    acc.Reload()
    for tag in acc.Tags().get("scalars", []):
      for event in acc.Scalars(tag):
        curves[tag][event.step] = event.value
    for tag in acc.Tags().get("tensors", []):
      for event in acc.Tensors(tag):
        value = tensor_util.make_ndarray(event.tensor_proto)
        if value.size == 1 and value.dtype.kind in "fiu":
          curves[tag][event.step] = float(value.reshape(()))
  return {tag: sorted(points.items()) for tag, points in curves.items()}


def plot_curves(results: Sequence[RunResult], path: str, train_tag: str, eval_tag: str) -> str | None:
  """Train vs test curves of each run given (e.g. without and with dropout): over-fitting shows as a gap."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 4.5))
  plotted = False
  for index, result in enumerate(results):
    curves = read_curves(result.workdir)
    name = ", ".join(f"{k}={v}" for k, v in result.labels.items() if k != SEED_LABEL)
    colour = f"C{index}"
    for tag, style, kind in ((train_tag, "--", "train"), (eval_tag, "-", "test")):
      if curves.get(tag):
        steps, values = zip(*curves[tag])
        ax.plot(steps, values, style, color=colour, label=f"{name} ({kind})")
        plotted = True
  if not plotted:
    plt.close(fig)
    return None
  ax.set_xlabel("step")
  ax.set_ylabel(f"{train_tag} / {eval_tag}")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  outputs.write_figure(path, fig, overwrite=True, dpi=120)  # the sweep's own report: rewritten each time
  plt.close(fig)
  return path


def write_hparams(results: Sequence[RunResult], root: str) -> str:
  """TensorBoard HParams: one session per finished run under ``ROOT/hparams/``, metrics from summary.json."""
  # summary_v2 itself, not hparams.api: the api module imports its Keras callback, i.e. TensorFlow.
  from tensorboard.plugins.hparams import summary_v2 as hp

  from alexnet_jax.train import summaries

  finished = [r for r in results if r.summary]
  base = os.path.join(root, "hparams")
  label_names = sorted({k for r in finished for k in r.labels})
  hparams = [hp.HParam(name) for name in label_names]
  metrics = [hp.Metric(m, display_name=m) for m in METRICS]
  writer = summaries.SummaryWriter(base)
  writer.write_summary(0, hp.hparams_config_pb(hparams=hparams, metrics=metrics))
  writer.close()
  for result in finished:
    writer = summaries.SummaryWriter(os.path.join(base, result.name))
    values = {h: _hparam_value(result.labels[h.name]) for h in hparams if h.name in result.labels}
    writer.write_summary(0, hp.hparams_pb(values, trial_id=result.name))
    writer.scalars(int(result.summary.get("step", 0)), {m: result.summary[m] for m in METRICS if m in result.summary})
    writer.close()
  return base


def write_report(
  root: str,
  *,
  x_label: str | None = None,
  curve_runs: Mapping[str, Any] | None = None,
  train_tag: str = "train_loss",
  eval_tag: str = "eval_loss",
  hparams: bool = True,
) -> dict[str, str]:
  """Writes ``ROOT/results.md`` and the plots; returns the paths written."""
  results = load_results(root)
  manifest = _manifest(root)
  claims.add_derived_metrics(results, manifest.get("convergence_train_loss"), read_curves)
  if curve_runs is None:
    curve_runs = manifest.get("curves")
  cells = group_cells(results)
  written = {}
  numeric = [
    k
    for k in (cells[0].labels if cells else {})
    if all(isinstance(c.labels[k], (int, float)) and not isinstance(c.labels[k], bool) for c in cells)
  ]
  x_label = x_label or (numeric[0] if numeric else None)
  if x_label:
    written["error_plot"] = plot_error_vs(cells, x_label, os.path.join(root, f"error_vs_{x_label}.png"))
  else:
    written["error_plot"] = plot_bars(cells, os.path.join(root, "error_by_cell.png"))
  chosen = _curve_runs(results, x_label, curve_runs)
  curves = plot_curves(chosen, os.path.join(root, "curves.png"), train_tag, eval_tag) if chosen else None
  if curves:
    written["curves_plot"] = curves
  if hparams:
    written["hparams"] = write_hparams(results, root)
  finished = sum(r.summary is not None for r in results)
  broken = [r for r in results if r.problem]
  text = [
    f"# Sweep results: {os.path.basename(os.path.abspath(root))}\n",
    f"{finished}/{len(results)} runs finished. Errors are mean +- std over seeds; the CI columns are 95 % "
    "Student-t intervals of the mean (half-widths); an over-fit run ends with train loss <= 0.05 and its test "
    "loss above its minimum.\n",
    *(
      [f"{len(broken)} failed: their summary.json cannot be read (rerun the sweep to redo them):\n"]
      + [f"- {r.name}: {r.problem}" for r in broken]
      + [""]
      if broken
      else []
    ),
    markdown_table(cells),
    claims.markdown_section(manifest.get("claims", []), results),
  ]
  for key in ("error_plot", "curves_plot"):
    if key in written:
      text.append(f"\n![{key}]({os.path.basename(written[key])})\n")
  written["table"] = os.path.join(root, "results.md")
  outputs.write_text(written["table"], "\n".join(text), overwrite=True)
  return written


def _curve_runs(results, x_label, curve_runs):
  """Seed-0 runs matching ``curve_runs`` (label -> value, or a list/tuple of allowed values);
  without it, those at the lowest and highest value of ``x_label`` (e.g. dropout 0 vs 0.75)."""
  finished = [r for r in results if r.summary and r.labels.get(SEED_LABEL, 0) in (0, None)]
  if curve_runs:
    allowed = {k: v if isinstance(v, (list, tuple)) else [v] for k, v in curve_runs.items()}
    return [r for r in finished if all(r.labels.get(k) in vs for k, vs in allowed.items())]
  if not x_label or not finished:
    return finished[:2]
  first = finished[0].labels
  same_rest = [r for r in finished if all(r.labels[k] == first[k] for k in first if k not in (x_label, SEED_LABEL))]
  values = sorted({r.labels[x_label] for r in same_rest})
  return [r for r in same_rest if r.labels[x_label] in (values[0], values[-1])]


def _hparam_value(value):
  return value if isinstance(value, (bool, int, float, str)) else str(value)


def _count(cell: Cell, flag: str) -> str:
  """ "k/n": how many of the cell's finished runs have ``flag`` set."""
  values = cell.values(flag)
  return f"{int(sum(values))}/{len(values)}" if values else "-"


def _pm(stat: tuple[float, float, int], scale: float, digits: int) -> str:
  mean, std, n = stat
  if not n:
    return "-"
  return f"{mean * scale:.{digits}f} +- {std * scale:.{digits}f}"


def main(argv):
  del argv
  for name, path in write_report(flags.FLAGS.root, x_label=flags.FLAGS.x_label).items():
    print(f"{name}: {path}")


if __name__ == "__main__":
  # Defined only when run as a program: launch/sweep.py imports this module and has its own flags.
  flags.DEFINE_string("root", None, "Sweep folder holding sweep.json and one workdir per run.")
  flags.DEFINE_string("x_label", None, "Numeric label for the error plot's x axis (default: the first numeric one).")
  flags.mark_flag_as_required("root")
  app.run(main)
