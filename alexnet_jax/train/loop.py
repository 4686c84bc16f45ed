"""The one training loop: :func:`train_and_evaluate` trains a config in a work directory.

``main.py`` calls it. The pieces it drives are pure and tested on their own: the train state
(``state.py``), the jitted steps (``steps.py``), the update rules (``optimizers.py``), checkpoints,
divergence and preemption handling. The input is decided once (``data/input_spec.py``) and read
by the loader (``data/loader.py``) and by the steps' augmentation (``data/augment.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from alexnet_jax import utils
from alexnet_jax.parallel import distributed, sharding
from alexnet_jax.train import (
  checkpoints,
  divergence,
  optimizers,
  preemption,
  profiling,
  run_dir,
  steps,
  summaries,
  validation,
)
from alexnet_jax.train.state import TrainState, create_train_state


@dataclasses.dataclass(frozen=True)
class Plan:
  """How long to train and when to evaluate, from the config and the dataset size."""

  num_steps: int
  steps_per_epoch: int
  eval_every: int

  @classmethod
  def from_config(cls, config, steps_per_epoch: int) -> Plan:
    num_steps = (
      config.num_train_steps if config.num_train_steps > 0 else max(round(config.num_epochs * steps_per_epoch), 1)
    )
    if num_steps > validation.MAX_STEPS:
      raise validation.ConfigError(
        f"config.num_epochs={config.num_epochs!r} plans {num_steps} steps of {steps_per_epoch} per epoch, more than "
        f"the int32 step counter holds ({validation.MAX_STEPS})"
      )
    eval_every = config.eval_every_steps if config.eval_every_steps > 0 else steps_per_epoch
    return cls(num_steps, steps_per_epoch, eval_every)


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


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str, *, overrides: dict | None = None, allow_config_change: bool = False
) -> dict:
  """Trains ``config`` in ``workdir`` (resuming its latest checkpoint) and returns the summary.

  ``overrides`` (the command line's ``--config.X`` values) are recorded in ``summary.json``. A
  workdir holding a run of another config is refused unless ``allow_config_change``; one where
  another trainer runs is refused (process 0 holds ``run_dir.TrainerLock``). Every start-up check
  (config, data, workdir, checkpoints) runs before anything is written there. Raises
  ``preemption.Preempted`` after checkpointing on SIGTERM/SIGINT and ``divergence.DivergedError``
  (saving nothing) when the loss or the parameters stop being finite.
  """
  validation.validate(config)
  with run_dir.TrainerLock(workdir) if distributed.is_main_process() else contextlib.nullcontext():
    return _train_and_evaluate(config, workdir, overrides, allow_config_change)


def _train_and_evaluate(config, workdir: str, overrides: dict | None, allow_config_change: bool) -> dict:
  from alexnet_jax.data import augment, input_spec, loader

  start_time = time.time()
  config_json = json.loads(config.to_json_best_effort())
  record_config = run_dir.check_config(workdir, config_json, allow_config_change=allow_config_change)
  spec = input_spec.build(config)
  plan = Plan.from_config(config, spec.steps_per_epoch)
  checkpoint_dir = checkpoints.checkpoint_dir(workdir)
  if os.path.isdir(checkpoint_dir):
    run_dir.check_writable(checkpoint_dir, "checkpoints")
  mesh = sharding.create_mesh(config.tower_parallel)
  tx = optimizers.create_optimizer(config)
  model_def, state = create_train_state(config, mesh, tx)
  schedule = optimizers.create_schedule(config, plan.num_steps)
  train_fn = steps.jit_train_step(
    model_def=model_def,
    tx=tx,
    schedule=schedule,
    mesh=mesh,
    parallelism=config.parallelism,
    preprocess=functools.partial(augment.train_inputs, spec),
    label_smoothing=config.label_smoothing,
    ema_decay=config.ema_decay,
  )
  eval_fn = steps.jit_eval_step(
    model_def, mesh, config.parallelism, preprocess=functools.partial(augment.eval_views, spec=spec)
  )
  plateau_fn = jax.jit(
    functools.partial(  # jit keeps the plateau record on the state's devices
      optimizers.update_plateau,
      patience=config.schedule.plateau_patience,
      factor=config.schedule.decay_factor,
      max_drops=config.schedule.max_drops,
      min_delta=config.schedule.min_delta,
    )
  )
  place = functools.partial(sharding.global_batch, mesh=mesh)
  shard_index, shard_count = sharding.input_shard(mesh)

  summary_path = os.path.join(workdir, "summary.json")
  is_chief = distributed.is_main_process()
  writer = None

  def evaluate(params):
    batches = loader.eval_batches(spec, shard_index=shard_index, shard_count=shard_count)
    return steps.evaluate(eval_fn, params, batches, place)

  def run_eval(step, state):
    """The delivered model's metrics; with a moving average, the trained parameters' too, as raw_*."""
    metrics = evaluate(state.delivered_params)
    if state.ema_params is not None:
      metrics |= {f"raw_{name}": value for name, value in evaluate(state.params).items() if name != "count"}
    _report_eval(step, metrics, state, writer)
    return metrics

  # From here on a signal is a request: the loop saves, then stops (preemption.py).
  with preemption.StopRequests() as stop:
    checkpointer = checkpoints.Checkpointer(
      checkpoint_dir, keep=config.keep_checkpoints, every_steps=config.checkpoint_every_steps, write_checksums=is_chief
    )
    try:
      state, meta = checkpointer.restore_latest(state)
      step = int(state.step)
      if stop.requested:
        raise preemption.Preempted(step, stop.signal_name, saved=False)
      if step < plan.num_steps:  # the first batch is read before anything is written: damaged files stop it
        batches = loader.train_batches(
          spec, start_step=meta.get("input_position", step), shard_index=shard_index, shard_count=shard_count
        )
        batches = itertools.chain([next(batches)], batches)
      if record_config and is_chief:  # only now: a refused or failed start leaves config.json as it was
        run_dir.record_config(workdir, config_json)
      if step >= plan.num_steps and (finished := _read_summary(summary_path)) is not None:
        logging.info("Run in %s already finished at step %d: %s", workdir, step, summary_path)
        return finished
      writer = summaries.SummaryWriter(workdir, enabled=is_chief)
      elapsed = lambda: meta.get("wall_seconds", 0.0) + time.time() - start_time
      history = list(meta.get("eval_history", []))
      lr_drops = list(meta.get("lr_drops", []))  # the plateau rule's cuts (optimizers.plateau_drop)
      num_params = sum(x.size for x in jax.tree.leaves(state.params))
      logging.info(
        "Training on %s: %d parameters, %d steps (%.2f epochs), from step %d, %d devices",
        config.dataset,
        num_params,
        plan.num_steps,
        plan.num_steps / plan.steps_per_epoch,
        step,
        jax.device_count(),
      )
      if step == 0:
        writer.config(config.to_dict(), str(config))
      progress = Progress(step, plan.num_steps, config.batch_size)
      pending, train_metrics, eval_metrics = [], dict(meta.get("train_metrics", {})), {}
      losses, last_saved = divergence.LossWatch(), (step or None)
      suspect = step or None  # the checkpoint resumed from, until the first save after it
      profiler = profiling.StepProfiler(
        config.profile_steps, os.path.join(workdir, "profile"), last_step=plan.num_steps
      )
      with profiler:
        while step < plan.num_steps:
          with profiler.step(step + 1):
            state, metrics = train_fn(state, place(next(batches)))
          step += 1
          profiler.after_step(step, (state, metrics))
          pending.append(metrics)
          losses.add(step, metrics["loss"])
          is_log, is_eval = step % config.log_every_steps == 0, step % plan.eval_every == 0
          is_last, is_save = step == plan.num_steps, checkpointer.is_save_step(step)
          if is_log or is_eval or is_save or is_last or stop.requested:
            losses.check(last_saved, suspect)
          if is_log or is_last:
            train_metrics = _report_training(step, pending, progress, writer)
            pending = []
          if is_eval or is_last:
            eval_metrics = run_eval(step, state)
            history.append({"step": step, **eval_metrics})
            if config.schedule.name == "plateau":
              before = state.plateau
              state = state.replace(plateau=plateau_fn(before, eval_metrics["top1_error"]))
              drop = optimizers.plateau_drop(
                before,
                state.plateau,
                schedule=schedule,
                step=step,
                epoch=step / plan.steps_per_epoch,
                eval_error=eval_metrics["top1_error"],
              )
              if drop is not None:
                lr_drops.append(drop)
                _report_drop(drop, writer)
            progress.restart(step)
          if is_log or is_eval or is_last:
            rate = float(optimizers.learning_rate_at(schedule, state.plateau, step))
            writer.scalars(step, {"schedule/learning_rate": rate})  # the next step's, after any drop
          if is_save or is_last or stop.requested:
            divergence.check_params_finite(step, state.params, last_saved, suspect)
            record = {
              "input_position": step,
              "eval_history": history,
              "lr_drops": lr_drops,
              "wall_seconds": elapsed(),
            }
            checkpointer.save(step, state, {**record, "train_metrics": train_metrics}, force=True)
            last_saved, suspect = step, None
          if stop.requested:
            writer.flush()
            raise preemption.Preempted(step, stop.signal_name)
      if not eval_metrics:  # the last checkpoint was final but the summary was never written
        eval_metrics = run_eval(step, state)
      if stop.requested:
        raise preemption.Preempted(step, stop.signal_name)
      record = {
        "step": step,
        "num_train_steps": plan.num_steps,
        "epochs": step / plan.steps_per_epoch,
        **{f"eval_{name}": value for name, value in eval_metrics.items()},
        **{f"train_{name}": value for name, value in train_metrics.items()},
        "wall_seconds": elapsed(),
        "num_params": num_params,
        "devices": jax.device_count(),
        "eval_history": history,
        "lr_drops": lr_drops,
        "config_overrides": dict(overrides or {}),
        "config": config_json,
      }
      if is_chief:
        utils.write_json_atomically(summary_path, record)
      logging.info(
        "Finished at step %d: eval top-1 error %.4f, top-5 error %.4f, loss %.4f, %.0f s in all. Summary: %s",
        step,
        record["eval_top1_error"],
        record["eval_top5_error"],
        record["eval_loss"],
        record["wall_seconds"],
        summary_path,
      )
      return record
    finally:
      if writer is not None:
        writer.close()
      checkpointer.close()


def _read_summary(path: str) -> dict | None:
  """The finished run's summary, or None if there is none or it cannot be read (then it is written again)."""
  if not os.path.exists(path):
    return None
  try:
    return utils.read_json_object(path)
  except (OSError, ValueError) as error:
    logging.warning("%s cannot be read (%s); evaluating the final checkpoint to write it again", path, error)
    return None


def _report_training(step: int, pending: list[dict], progress: Progress, writer) -> dict:
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


def _report_drop(drop: dict, writer) -> None:
  """Logs a plateau drop (``optimizers.plateau_drop``) and writes it as a TensorBoard text event."""
  line = (
    f"learning-rate drop {drop['drop']} after step {drop['step']} (epoch {drop['epoch']:.2f}): validation "
    f"top-1 error {drop['eval_top1_error']:.4f}, no improvement on {drop['best_top1_error']:.4f}; "
    f"learning rate {drop['old_learning_rate']:.4g} -> {drop['new_learning_rate']:.4g}"
  )
  logging.info("%s", line)
  writer.text(drop["step"], "schedule/lr_drop", line)


def _report_eval(step: int, metrics: dict, state: TrainState, writer) -> None:
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
