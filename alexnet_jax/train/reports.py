"""What the training loop's hooks say: log lines and TensorBoard events for training, evaluation,
learning-rate drops and the start and end of a run, and the throughput over the steps since the last
report."""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import logging

from alexnet_jax import utils
from alexnet_jax.train import summaries
from alexnet_jax.train.state import TrainState


class Progress:
  """Throughput and ETA over the steps trained since the last report (evals excluded)."""

  def __init__(self, step: int, num_steps: int, batch_size: int):
    self.num_steps, self.batch_size = num_steps, batch_size
    self.restart(step)

  def restart(self, step: int) -> None:
    self._step, self._time = step, time.perf_counter()

  def report(self, step: int) -> tuple[float, float]:
    """(images/s, seconds left) since the last restart, then restarts the window at ``step``."""
    steps_per_second = (step - self._step) / max(time.perf_counter() - self._time, 1e-9)
    self.restart(step)
    eta = (self.num_steps - step) / max(steps_per_second, 1e-9)
    return steps_per_second * self.batch_size, eta


def training(step: int, pending: list[dict], progress: Progress, writer: summaries.SummaryWriter) -> dict:
  """Averages the steps' metrics since the last report; logs and writes them with throughput."""
  fetched = jax.device_get(pending)
  metrics = {name: float(np.mean([m[name] for m in fetched])) for name in fetched[0]}
  images_per_second, eta = progress.report(step)
  metrics["images_per_second"] = images_per_second
  writer.scalars(step, {f"train_{name}": value for name, value in metrics.items()})
  logging.info(
    "step %d/%d  loss %.4f  top-1 error %.4f  lr %.3g  %.1f img/s  ETA %s",
    step,
    progress.num_steps,
    metrics["loss"],
    metrics["top1_error"],
    metrics["learning_rate"],
    images_per_second,
    utils.format_duration(eta),
  )
  return metrics


def evaluation(step: int, metrics: dict, state: TrainState, writer: summaries.SummaryWriter) -> None:
  """Logs an evaluation; writes its scalars and the conv1 kernels (the paper's Figure 3)."""
  writer.scalars(step, {f"eval_{name}": value for name, value in metrics.items() if name != "count"})
  writer.images(step, summaries.conv1_kernel_images(jax.device_get(state.params["convs"][0]["kernel"])))
  writer.flush()
  logging.info(
    "eval at step %d: loss %.4f  top-1 error %.4f  top-5 error %.4f  (%d examples)%s",
    step,
    metrics["loss"],
    metrics["top1_error"],
    metrics["top5_error"],
    metrics["count"],
    f"; without the moving average: top-1 error {metrics['raw_top1_error']:.4f}" if "raw_top1_error" in metrics else "",
  )


def learning_rate_drop(drop: dict, writer: summaries.SummaryWriter) -> None:
  """Logs a plateau drop (``optimizers.plateau_drop``) and writes it as a TensorBoard text event."""
  line = (
    f"learning-rate drop {drop['drop']} after step {drop['step']} (epoch {drop['epoch']:.2f}): validation "
    f"top-1 error {drop['eval_top1_error']:.4f}, no improvement on {drop['best_top1_error']:.4f}; "
    f"learning rate {drop['old_learning_rate']:.4g} -> {drop['new_learning_rate']:.4g}"
  )
  logging.info("%s", line)
  writer.text(drop["step"], "schedule/lr_drop", line)


def start(dataset: str, num_params: int, num_steps: int, steps_per_epoch: int, step: int) -> None:
  logging.info(
    "Training on %s: %d parameters, %d steps (%.2f epochs), from step %d, %d devices",
    dataset,
    num_params,
    num_steps,
    num_steps / steps_per_epoch,
    step,
    jax.device_count(),
  )


def finish(summary: dict, summary_path: str) -> None:
  logging.info(
    "Finished at step %d: eval top-1 error %.4f, top-5 error %.4f, loss %.4f, %.0f s in all. Summary: %s",
    summary["step"],
    summary["eval_top1_error"],
    summary["eval_top5_error"],
    summary["eval_loss"],
    summary["wall_seconds"],
    summary_path,
  )
