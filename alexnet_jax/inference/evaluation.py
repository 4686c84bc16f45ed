"""Evaluating one checkpoint of a run: top-1/top-5 and loss, accuracy per class, the confusion matrix.

The numbers come from the training loop's own eval step (``train/steps.py``) on the run's own eval
batches (``data/loader.py``, the test views of ``data/augment.py``), so they equal what the run
logged for that step; the step also hands back every example's log-probabilities, from which the
per-class accuracy and the confusion matrix are counted.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from alexnet_jax import outputs, utils
from alexnet_jax.data import options
from alexnet_jax.inference.trained_run import TrainedRun
from alexnet_jax.parallel import sharding
from alexnet_jax.train import steps


def evaluate(run: TrainedRun) -> dict:
  """The report of ``run`` on its ``config.eval_split`` with its ``config.input.eval_crops``.

  Keys: step, split, crops, weights ("average": the moving average of the weights), count, loss,
  top1/top5 error and accuracy, ``per_class`` (name,
  examples, accuracy; None for a class without examples) and ``confusion_matrix`` (rows: true
  label, columns: predicted label, counts of examples).
  """
  from alexnet_jax.data import augment, loader  # pylint: disable=g-import-not-at-top

  spec = run.spec
  eval_fn = steps.jit_eval_step(
    run.model_def,
    run.mesh,
    run.config.parallelism,
    with_log_probs=True,
    preprocess=functools.partial(augment.eval_views, spec=spec),
  )
  place = functools.partial(sharding.global_batch, mesh=run.mesh)
  names = run.label_names()
  confusion = np.zeros((len(names), len(names)), np.int64)
  totals = {}
  for batch in loader.eval_batches(spec):
    sums, log_probs = eval_fn(run.params, place(batch))
    totals = steps.add_sums(totals, sums)
    real = batch["mask"] > 0
    np.add.at(confusion, (batch["label"][real], np.asarray(log_probs).argmax(axis=-1)[real]), 1)
  metrics = steps.mean_metrics(totals)
  examples = confusion.sum(axis=1)
  per_class = [
    {"label": i, "name": name, "examples": int(n), "accuracy": float(confusion[i, i] / n) if n else None}
    for i, (name, n) in enumerate(zip(names, examples))
  ]
  return {
    "workdir": run.workdir,
    "step": run.step,
    "split": run.config.eval_split,
    "crops": run.config.input.eval_crops,
    "weights": "average" if run.averaged else "trained",
    **metrics,
    "count": int(metrics["count"]),
    "top1_accuracy": 1.0 - metrics["top1_error"],
    "top5_accuracy": 1.0 - metrics["top5_error"],
    "per_class": per_class,
    "confusion_matrix": confusion.tolist(),
  }


def output_stem(
  workdir: str, split: str, step: int, crops: str, *, max_examples: int | None = None, trained_of_averaged: bool = False
) -> str:
  """``W/eval_<split>_<step>``, then ``_<crops>`` for views other than the centre crop, ``_max<N>`` (``_all``
  for -1) when ``--max_examples`` was given, and ``_trained`` for the trained weights of a run that
  averages them. The split's slicing is spelled out (:func:`split_name`), so no two splits share a name."""
  suffix = "" if crops == "center" else f"_{crops}"
  if max_examples is not None:
    suffix += "_all" if max_examples == -1 else f"_max{max_examples}"
  suffix += "_trained" if trained_of_averaged else ""
  return os.path.join(workdir, f"eval_{split_name(split)}_{step}{suffix}")


# How a split's slicing characters are spelled in a file name: test[:5%] -> test_to5pct, test[-5%:] -> test_m5pctto.
_SPLIT_SPELLING = {"[": "_", "]": "", ":": "to", "%": "pct", "-": "m", "+": "_plus_", ".": "p"}


def split_name(split: str) -> str:
  """``split`` as a file-name part, one-to-one: letters, digits and ``_`` kept, slicing spelled out, any other
  character as ``x<hex code>``."""
  spelled = (c if c.isascii() and (c.isalnum() or c == "_") else _SPLIT_SPELLING.get(c, f"x{ord(c):x}") for c in split)
  return "".join(spelled)


def output_paths(stem: str, *, overwrite: bool = False) -> tuple[str, str]:
  """``STEM.json`` and ``STEM_confusion.png``, checked as outputs (``alexnet_jax/outputs.py``) before
  the evaluation runs: an existing report is replaced only when ``overwrite``."""
  json_path, png_path = f"{stem}.json", f"{stem}_confusion.png"
  return outputs.check(json_path, overwrite=overwrite), outputs.check(png_path, overwrite=overwrite)


def write(report: dict, stem: str, *, overwrite: bool = False) -> tuple[str, str]:
  """Writes ``STEM.json`` and the confusion matrix as ``STEM_confusion.png``; returns both paths."""
  json_path, png_path = output_paths(stem, overwrite=overwrite)
  outputs.write_json(json_path, report, overwrite=overwrite)
  names = [c["name"] for c in report["per_class"]]
  plot_confusion(np.asarray(report["confusion_matrix"]), names, png_path, report, overwrite=overwrite)
  return json_path, png_path


def plot_confusion(
  confusion: np.ndarray, names: list[str], path: str, report: dict, *, overwrite: bool = False
) -> None:
  """Rows normalised to the fraction of each true class; counts written in the cells up to 20 classes."""
  plt = utils.pyplot()
  classes = len(names)
  fractions = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
  size = min(4 + 0.45 * classes, 12)
  fig, ax = plt.subplots(figsize=(size + 1, size), dpi=100)
  shown = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
  fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
  if classes <= 30:
    ax.set_xticks(range(classes), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(classes), names, fontsize=8)
  if classes <= 20:
    for (row, column), count in np.ndenumerate(confusion):
      if count:
        colour = "white" if fractions[row, column] > 0.5 else "black"
        ax.text(column, row, str(count), ha="center", va="center", fontsize=7, color=colour)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  ax.set_title(
    f"{report['split']}, step {report['step']}, {report['crops']}: top-1 {100 * report['top1_accuracy']:.2f} %"
    f" of {report['count']}",
    fontsize=9,
  )
  fig.tight_layout()
  try:
    outputs.write_figure(path, fig, overwrite=overwrite)
  finally:
    plt.close(fig)


PRINTED_CLASSES = 50  # more classes than this: only the 10 worst and the 10 best are printed


def format_report(report: dict) -> str:
  """The report as text: the totals, then one line per class (the worst and best ten of many)."""
  lines = [
    f"step {report['step']}, {report['split']} ({report['count']} examples, "
    f"{options.EVAL_CROPS_WORDS[report['crops']]}"
    f"{', moving average of the weights' if report.get('weights') == 'average' else ''}): "
    f"top-1 accuracy {100 * report['top1_accuracy']:.2f} %, top-5 accuracy {100 * report['top5_accuracy']:.2f} %, "
    f"loss {report['loss']:.4f}",
  ]
  classes = report["per_class"]
  if len(classes) > PRINTED_CLASSES:
    ranked = sorted((c for c in classes if c["accuracy"] is not None), key=lambda c: c["accuracy"])
    classes = ranked[:10] + ranked[-10:]
    lines.append("per class (the 10 worst and the 10 best; all in the JSON file):")
  else:
    lines.append("per class:")
  width = max(len(c["name"]) for c in classes)
  for c in classes:
    accuracy = "-" if c["accuracy"] is None else f"{100 * c['accuracy']:6.2f} %"
    lines.append(f"  {c['label']:4d} {c['name']:<{width}}  {accuracy}  of {c['examples']}")
  return "\n".join(lines)
