"""The one training loop: :func:`train_and_evaluate` trains a config in a work directory.

``main.py`` calls it. The loop body is the paper's procedure: for each step, train on the next
batch; then each cadence hook that is due (``hooks.py``): log, evaluate and apply the plateau rule
(``optimizers.PlateauRule``), write the learning rate, save a checkpoint with its
``checkpoints.ResumeRecord``, stop on a signal. The pieces it drives are pure and tested on their
own: the train state (``state.py``), the jitted steps (``steps.py``), the update rules
(``optimizers.py``), checkpoints, divergence and preemption handling, the reports (``reports.py``).
The input is decided once (``data/input_spec.py``) and read by the loader (``data/loader.py``) and by
the steps' augmentation (``data/augment.py``)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import json
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
from absl import logging

from alexnet_jax import utils
from alexnet_jax.parallel import distributed, sharding
from alexnet_jax.train import (
  checkpoints,
  divergence,
  hooks,
  init_from,
  optimizers,
  preemption,
  profiling,
  reports,
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
  from alexnet_jax.data import datasets, input_spec

  start_time = time.time()
  config_json = json.loads(config.to_json_best_effort())
  must_record_config = run_dir.check_config(workdir, config_json, allow_config_change=allow_config_change)
  datasets.prepare(config)  # may download or convert it; everything after only reads
  spec = input_spec.build(config)
  plan = Plan.from_config(config, spec.steps_per_epoch)
  checkpoint_dir = checkpoints.checkpoint_dir(workdir)
  if os.path.isdir(checkpoint_dir):
    run_dir.check_writable(checkpoint_dir, "checkpoints")
  request = _Request(config, workdir, config_json, must_record_config, dict(overrides or {}), start_time)
  parts, state = _Parts.build(config, spec, plan)
  # From here on a signal is a request: the loop saves, then stops (preemption.py).
  with preemption.StopRequests() as stop:
    checkpointer = checkpoints.Checkpointer(
      checkpoint_dir,
      keep=config.keep_checkpoints,
      every_steps=config.checkpoint_every_steps,
      write_checksums=distributed.is_main_process(),
    )
    try:
      return _resume(request, parts, state, checkpointer, stop)
    finally:
      checkpointer.close()


@dataclasses.dataclass(frozen=True)
class _Request:
  """What the caller asked for: the config (and as JSON), the work directory, the command-line overrides."""

  config: ml_collections.ConfigDict
  workdir: str
  config_json: dict
  must_record_config: bool  # run_dir.check_config's answer: config.json is new or changed
  overrides: dict
  start_time: float

  @property
  def summary_path(self) -> str:
    return os.path.join(self.workdir, "summary.json")


@dataclasses.dataclass(frozen=True)
class _Parts:
  """The run's fixed parts, built once: the input, the plan, the model, the jitted steps and the rules."""

  spec: Any  # data/input_spec.InputSpec
  plan: Plan
  schedule: Callable
  plateau_rule: optimizers.PlateauRule
  train_fn: Callable
  eval_fn: Callable
  mesh: jax.sharding.Mesh

  @classmethod
  def build(cls, config, spec, plan: Plan) -> tuple[_Parts, TrainState]:
    """The parts and the freshly initialised train state (the template a checkpoint restores into)."""
    from alexnet_jax.data import augment

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
    rule = optimizers.PlateauRule.from_config(config, schedule)
    return cls(spec, plan, schedule, rule, train_fn, eval_fn, mesh), state

  def place(self, batch):
    """A host batch as one global array on the mesh."""
    return sharding.global_batch(batch, mesh=self.mesh)

  def train_batches(self, start_step: int):
    """The training batches from ``start_step`` on, the first one read already (damaged files stop it here)."""
    from alexnet_jax.data import loader

    shard_index, shard_count = sharding.input_shard(self.mesh)
    batches = loader.train_batches(self.spec, start_step=start_step, shard_index=shard_index, shard_count=shard_count)
    return itertools.chain([next(batches)], batches)

  def evaluate(self, params) -> dict:
    """``params``' metrics on the whole evaluation split."""
    from alexnet_jax.data import loader

    shard_index, shard_count = sharding.input_shard(self.mesh)
    batches = loader.eval_batches(self.spec, shard_index=shard_index, shard_count=shard_count)
    return steps.evaluate(self.eval_fn, params, batches, self.place)


def _resume(request: _Request, parts: _Parts, state: TrainState, checkpointer, stop) -> dict:
  """Restores the latest checkpoint (or, in a new fine-tuning run, ``config.init_from``'s weights), then trains
  to the plan's end and writes the summary, or returns the finished run's summary. Reads the first batch
  before anything is written."""
  if checkpointer.latest_step() is None and request.config.init_from:  # a fine-tuning run's first start
    state = init_from.start_from(state, request.config.init_from)
  state, meta = checkpointer.restore_latest(state)
  step = int(state.step)
  resumed = checkpoints.ResumeRecord.from_dict(meta, step=step)
  if stop.requested:
    raise preemption.Preempted(step, stop.signal_name, saved=False)
  batches = parts.train_batches(resumed.input_position) if step < parts.plan.num_steps else iter(())
  is_chief = distributed.is_main_process()
  if request.must_record_config and is_chief:  # only now: a refused or failed start leaves config.json as it was
    run_dir.record_config(request.workdir, request.config_json)
  if step >= parts.plan.num_steps and (finished := _read_summary(request.summary_path)) is not None:
    logging.info("Run in %s already finished at step %d: %s", request.workdir, step, request.summary_path)
    return finished
  with contextlib.closing(summaries.SummaryWriter(request.workdir, enabled=is_chief)) as writer:
    run = _Run(request, parts, state, resumed, writer=writer, checkpointer=checkpointer, stop=stop)
    run.train(batches)
    return run.finish()


class _Run:
  """A run between its steps: the train state, and what the hooks keep (metrics, history, drops).

  The hooks, in the order they run after a step: log the training metrics, evaluate (and apply the
  plateau rule), write the next step's learning rate, save a checkpoint, stop on a signal; the
  divergence check runs before the first of them that is due.
  """

  def __init__(
    self,
    request: _Request,
    parts: _Parts,
    state: TrainState,
    resumed: checkpoints.ResumeRecord,
    *,
    writer,
    checkpointer,
    stop,
  ):
    self.request, self.parts, self.state, self.step = request, parts, state, int(state.step)
    self.writer, self.checkpointer, self.stop = writer, checkpointer, stop
    self.resumed_wall_seconds = resumed.wall_seconds
    self.history, self.lr_drops = list(resumed.eval_history), list(resumed.lr_drops)
    self.pending, self.train_metrics, self.eval_metrics = [], dict(resumed.train_metrics), {}
    self.guard = divergence.Guard(self.step)
    self.num_params = sum(x.size for x in jax.tree.leaves(state.params))
    self.progress = reports.Progress(self.step, parts.plan.num_steps, request.config.batch_size)

  def cadence(self) -> hooks.Hooks:
    """The hooks of this run, at the config's cadences."""
    config, plan = self.request.config, self.parts.plan
    return hooks.Hooks(
      [
        hooks.Hook("log", self.log_training, every=(config.log_every_steps,)),
        hooks.Hook("evaluate", self.evaluate, every=(plan.eval_every,)),
        hooks.Hook("learning rate", self.write_learning_rate, every=(config.log_every_steps, plan.eval_every)),
        hooks.Hook("checkpoint", self.save, every=(config.checkpoint_every_steps,), on_stop=True),
        hooks.Hook("stop", self.stop_after, at_last=False, on_stop=True),
      ],
      before_any=lambda step: self.guard.check_losses(),
      stopping=lambda: self.stop.requested,
    )

  def train(self, batches) -> None:
    """The paper's procedure: for each step, train on the next batch; then each hook that is due."""
    config, num_steps = self.request.config, self.parts.plan.num_steps
    reports.start(config.dataset, self.num_params, num_steps, self.parts.plan.steps_per_epoch, self.step)
    if self.step == 0:
      self.writer.config(config.to_dict(), str(config))
    cadence = self.cadence()
    profile_dir = os.path.join(self.request.workdir, "profile")
    with profiling.StepProfiler(config.profile_steps, profile_dir, last_step=num_steps) as profiler:
      while self.step < num_steps:
        with profiler.step(self.step + 1):
          self.state, metrics = self.parts.train_fn(self.state, self.parts.place(next(batches)))
        self.step += 1
        profiler.after_step(self.step, (self.state, metrics))
        self.pending.append(metrics)
        self.guard.add_loss(self.step, metrics["loss"])
        cadence.after_step(self.step, last=self.step == num_steps)

  def log_training(self, step: int) -> None:
    self.train_metrics = reports.training(step, self.pending, self.progress, self.writer)
    self.pending = []

  def evaluate(self, step: int) -> None:
    """Evaluates, records the result in the history, and applies the plateau rule to it."""
    self.eval_metrics = self.report_eval(step)
    self.history.append({"step": step, **self.eval_metrics})
    epoch = step / self.parts.plan.steps_per_epoch
    plateau, drop = self.parts.plateau_rule.after_eval(
      self.state.plateau, self.eval_metrics["top1_error"], step=step, epoch=epoch
    )
    self.state = self.state.replace(plateau=plateau)
    if drop is not None:
      self.lr_drops.append(drop)
      reports.learning_rate_drop(drop, self.writer)
    self.progress.restart(step)

  def report_eval(self, step: int) -> dict:
    """The delivered model's metrics; with a moving average, the trained parameters' too, as raw_*."""
    metrics = self.parts.evaluate(self.state.delivered_params)
    if self.state.ema_params is not None:
      raw = self.parts.evaluate(self.state.params)
      metrics |= {f"raw_{name}": value for name, value in raw.items() if name != "count"}
    reports.evaluation(step, metrics, self.state, self.writer)
    return metrics

  def write_learning_rate(self, step: int) -> None:
    """The next step's learning rates, the weights' and the biases' (after any plateau drop), as TensorBoard scalars."""
    rates = [float(rate) for rate in optimizers.rates_of(self.parts.schedule, self.state.plateau, step)]
    self.writer.scalars(step, dict(zip(("schedule/learning_rate", "schedule/bias_learning_rate"), rates)))

  def save(self, step: int) -> None:
    """Checks that the parameters are finite, then saves the state and the resume record."""
    self.guard.check_params(step, self.state.params)
    record = checkpoints.ResumeRecord(
      input_position=step,
      eval_history=tuple(self.history),
      lr_drops=tuple(self.lr_drops),
      wall_seconds=self.elapsed(),
      train_metrics=self.train_metrics,
    )
    self.checkpointer.save(step, self.state, record.to_dict(), force=True)
    self.guard.saved(step)

  def stop_after(self, step: int) -> None:
    """A signal came: the checkpoint of ``step`` is being saved; flush and stop."""
    self.writer.flush()
    raise preemption.Preempted(step, self.stop.signal_name)

  def elapsed(self) -> float:
    """Seconds spent training this run, in every process lifetime that trained it."""
    return self.resumed_wall_seconds + time.time() - self.request.start_time

  def finish(self) -> dict:
    """The summary (written to ``summary.json`` by process 0): final metrics, history, drops, config."""
    if not self.eval_metrics:  # the last checkpoint was final but the summary was never written
      self.eval_metrics = self.report_eval(self.step)
    if self.stop.requested:
      raise preemption.Preempted(self.step, self.stop.signal_name)
    plan, request = self.parts.plan, self.request
    summary = {
      "step": self.step,
      "num_train_steps": plan.num_steps,
      "epochs": self.step / plan.steps_per_epoch,
      **{f"eval_{name}": value for name, value in self.eval_metrics.items()},
      **{f"train_{name}": value for name, value in self.train_metrics.items()},
      "wall_seconds": self.elapsed(),
      "num_params": self.num_params,
      "devices": jax.device_count(),
      "eval_history": self.history,
      "lr_drops": self.lr_drops,
      "config_overrides": request.overrides,
      "config": request.config_json,
    }
    if distributed.is_main_process():
      utils.write_json_atomically(request.summary_path, summary)
    reports.finish(summary, request.summary_path)
    return summary


def _read_summary(path: str) -> dict | None:
  """The finished run's summary, or None if there is none or it cannot be read (then it is written again)."""
  if not os.path.exists(path):
    return None
  try:
    return utils.read_json_object(path)
  except (OSError, ValueError) as error:
    logging.warning("%s cannot be read (%s); evaluating the final checkpoint to write it again", path, error)
    return None
