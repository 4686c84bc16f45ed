"""Training and evaluation: the train state, the jit-compiled steps and the one training loop.

:func:`train_and_evaluate` is the entry point (``main.py`` calls it). Everything above it works on
arrays and can be tested on its own. The steps see the device mesh only through ``sharding``
(``create_mesh``, ``shard_model``, ``batch_sharding``, ``forward``), so tower parallelism needs no
change here. TensorFlow comes in only with the input pipeline and the TensorBoard writer, which
are imported inside :func:`train_and_evaluate`: the model and the steps import without it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx

from alexnet_jax import (checkpointing, config_validation, distributed, divergence, models,
                         optimizers, preemption, sharding)
from alexnet_jax import workdir as workdir_lib


@flax.struct.dataclass
class TrainState:
  """Everything a step changes; checkpointed whole."""

  step: jax.Array
  params: nnx.State
  opt_state: optax.OptState
  plateau: optimizers.PlateauState
  rng: jax.Array  # key data of the dropout stream; step t draws from fold_in(rng, t)


@dataclasses.dataclass(frozen=True)
class ModelDef:
  """The static half of the model: its graph in train and eval mode and its RNG variables."""

  train_graph: Any
  eval_graph: Any
  rng_state: nnx.State

  def train_model(self, params: nnx.State, dropout_key: jax.Array) -> models.AlexNet:
    # Fresh RNG variables in the caller's trace (the stored ones belong to the eager one), then
    # reseeded: the dropout masks depend only on ``dropout_key``.
    rng_state = jax.tree.map(lambda x: x, self.rng_state)
    model = nnx.merge(self.train_graph, params, rng_state)
    nnx.reseed(model, dropout=dropout_key)
    return model

  def eval_model(self, params: nnx.State) -> models.AlexNet:
    # Fresh RNG variables here too: the tower-parallel forward writes them back after shard_map.
    return nnx.merge(self.eval_graph, params, jax.tree.map(lambda x: x, self.rng_state))


def create_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> models.AlexNet:
  """AlexNet from ``config.model`` (the dtype given by name, e.g. "bfloat16")."""
  kwargs = config.model.to_dict()
  kwargs["dtype"] = jnp.dtype(kwargs["dtype"])
  return models.AlexNet(kwargs.pop("num_classes"), **kwargs, rngs=rngs)


def create_train_state(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
                       tx: optax.GradientTransformation) -> tuple[ModelDef, TrainState]:
  """A freshly initialised model on ``mesh`` and its train state at step 0."""
  params_key, dropout_key = jax.random.split(jax.random.key(config.seed))
  model = sharding.create_sharded_model(
      lambda: create_model(config, nnx.Rngs(params=params_key, dropout=dropout_key)), mesh,
      config.parallelism)
  train_graph, params, rng_state = nnx.split(model, nnx.Param, ...)
  eval_graph = nnx.graphdef(nnx.view(model, deterministic=True))
  state = TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                     plateau=optimizers.init_plateau(), rng=jax.random.key_data(dropout_key))
  return ModelDef(train_graph, eval_graph, rng_state), _replicate_unplaced(state, mesh)


def _replicate_unplaced(tree, mesh):
  """Puts leaves not yet on ``mesh`` (counters, hyper-parameters, keys) on it, replicated.

  The optimizer's per-parameter arrays already follow their parameter's sharding (optax builds
  them with ``zeros_like``); only the scalars are left on the default device.
  """
  replicated = sharding.replicated(mesh)
  on_mesh = lambda x: isinstance(x.sharding, jax.sharding.NamedSharding) and x.sharding.mesh == mesh
  return jax.tree.map(lambda x: x if on_mesh(x) else jax.device_put(x, replicated), tree)


def classification_metrics(log_probs: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
  """Per-example cross-entropy and top-1 / top-5 errors (0 or 1) from log-probabilities."""
  loss = -jnp.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]
  top1_error = jnp.argmax(log_probs, axis=-1) != labels
  _, top5 = jax.lax.top_k(log_probs, min(5, log_probs.shape[-1]))
  top5_error = ~jnp.any(top5 == labels[:, None], axis=-1)
  return {"loss": loss, "top1_error": top1_error.astype(jnp.float32),
          "top5_error": top5_error.astype(jnp.float32)}


def train_step(state: TrainState, batch: dict, *, model_def: ModelDef,
               tx: optax.GradientTransformation, schedule: Callable, mesh,
               parallelism: str = "towers") -> tuple[TrainState, dict]:
  """One SGD step on a batch; returns the new state and the batch's mean metrics."""
  dropout_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

  def loss_fn(params):
    logits = sharding.forward(model_def.train_model(params, dropout_key), batch["image"], mesh,
                              parallelism)
    metrics = classification_metrics(jax.nn.log_softmax(logits), batch["label"])
    return metrics["loss"].mean(), metrics

  grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params)
  learning_rate = schedule(state.step) * state.plateau.lr_scale
  opt_state = optimizers.set_learning_rate(state.opt_state, learning_rate)
  updates, opt_state = tx.update(grads, opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {name: value.mean() for name, value in metrics.items()}
  metrics["learning_rate"] = learning_rate
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def eval_step(params: nnx.State, batch: dict, *, model_def: ModelDef, mesh,
              parallelism: str = "towers") -> dict:
  """Sums of loss, errors and example count over the real (mask 1) examples of a batch.

  Ten-crop batches (images of rank 5: batch, crops, H, W, C) average the softmax over the crops.
  """
  images = batch["image"]
  model = model_def.eval_model(params)
  if images.ndim == 5:
    size, crops = images.shape[:2]
    logits = sharding.forward(model, images.reshape(size * crops, *images.shape[2:]), mesh,
                              parallelism)
    probs = jax.nn.softmax(logits).reshape(size, crops, -1).mean(axis=1)
    log_probs = jnp.log(jnp.maximum(probs, jnp.finfo(probs.dtype).tiny))
  else:
    log_probs = jax.nn.log_softmax(sharding.forward(model, images, mesh, parallelism))
  mask = batch["mask"].astype(jnp.float32)
  sums = {name: (value * mask).sum() for name, value in
          classification_metrics(log_probs, batch["label"]).items()}
  sums["count"] = mask.sum()
  return sums


def jit_train_step(model_def: ModelDef, tx: optax.GradientTransformation, schedule: Callable,
                   mesh, parallelism: str = "towers") -> Callable:
  """``train_step`` compiled for this model, optimizer and mesh; the state's buffers are donated."""
  return jax.jit(functools.partial(train_step, model_def=model_def, tx=tx, schedule=schedule,
                                   mesh=mesh, parallelism=parallelism), donate_argnums=0)


def jit_eval_step(model_def: ModelDef, mesh, parallelism: str = "towers") -> Callable:
  return jax.jit(functools.partial(eval_step, model_def=model_def, mesh=mesh, parallelism=parallelism))


def evaluate(eval_fn: Callable, params: nnx.State, batches, place: Callable) -> dict[str, float]:
  """Mean loss and errors over every real example of the eval iterator."""
  totals = {}
  for batch in batches:
    sums = eval_fn(params, place(batch))
    totals = {name: totals.get(name, 0.0) + value for name, value in sums.items()}
  totals = jax.device_get(totals)
  count = float(totals.pop("count"))
  return {name: float(value) / count for name, value in totals.items()} | {"count": count}


@dataclasses.dataclass(frozen=True)
class Plan:
  """How long to train and when to evaluate, from the config and the dataset size."""

  num_steps: int
  steps_per_epoch: int
  eval_every: int

  @classmethod
  def from_config(cls, config, num_train_examples: int) -> "Plan":
    steps_per_epoch = max(num_train_examples // config.batch_size, 1)
    num_steps = (config.num_train_steps if config.num_train_steps > 0
                 else max(round(config.num_epochs * steps_per_epoch), 1))
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


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       overrides: dict | None = None, allow_config_change: bool = False) -> dict:
  """Trains ``config`` in ``workdir`` (resuming its latest checkpoint) and returns the summary.

  ``overrides`` (the command line's ``--config.X`` values) are recorded in ``summary.json``. A
  workdir holding a run of another config is refused unless ``allow_config_change``. Raises
  ``preemption.Preempted`` after checkpointing on SIGTERM/SIGINT and ``divergence.DivergedError``
  (saving nothing) when the loss or the parameters stop being finite.
  """
  from alexnet_jax import input_pipeline, summaries  # pylint: disable=g-import-not-at-top
  start_time = time.time()
  config_validation.validate(config)
  workdir_lib.prepare(workdir, json.loads(config.to_json_best_effort()),
                      allow_config_change=allow_config_change, write=jax.process_index() == 0)
  num_train_examples, _, num_classes = input_pipeline.dataset_info(config)
  if num_classes != config.model.num_classes:
    raise config_validation.ConfigError(
        f"config.model.num_classes={config.model.num_classes} but {config.dataset} has {num_classes}")
  plan = Plan.from_config(config, num_train_examples)
  mesh = sharding.create_mesh(config.tower_parallel)
  tx = optimizers.create_optimizer(config)
  model_def, state = create_train_state(config, mesh, tx)
  schedule = optimizers.create_schedule(config, plan.num_steps)
  train_fn = jit_train_step(model_def, tx, schedule, mesh, config.parallelism)
  eval_fn = jit_eval_step(model_def, mesh, config.parallelism)
  plateau_fn = jax.jit(functools.partial(  # jit keeps the plateau record on the state's devices
      optimizers.update_plateau, patience=config.schedule.plateau_patience,
      factor=config.schedule.decay_factor, max_drops=config.schedule.max_drops))
  place = functools.partial(sharding.global_batch, mesh=mesh)
  shard_index, shard_count = sharding.input_shard(mesh)

  os.makedirs(workdir, exist_ok=True)
  summary_path = os.path.join(workdir, "summary.json")
  checkpointer = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"), keep=config.keep_checkpoints,
      every_steps=config.checkpoint_every_steps)
  is_chief = distributed.is_main_process()
  writer = summaries.SummaryWriter(workdir, enabled=is_chief)

  def run_eval(step, state):
    batches = input_pipeline.create_eval_iterator(config, process_index=shard_index,
                                                  process_count=shard_count)
    metrics = evaluate(eval_fn, state.params, batches, place)
    _report_eval(step, metrics, state, writer)
    return metrics

  stop = preemption.StopRequests()
  try:
    state, meta = checkpointer.restore_latest(state)
    step = int(state.step)
    if step >= plan.num_steps and os.path.exists(summary_path):
      logging.info("Run in %s already finished at step %d: %s", workdir, step, summary_path)
      with open(summary_path) as f:
        return json.load(f)
    elapsed = lambda: meta.get("wall_seconds", 0.0) + time.time() - start_time
    history = list(meta.get("eval_history", []))
    num_params = sum(x.size for x in jax.tree.leaves(state.params))
    logging.info("Training on %s: %d parameters, %d steps (%.2f epochs), from step %d, %d devices",
                 config.dataset, num_params, plan.num_steps, plan.num_steps / plan.steps_per_epoch,
                 step, jax.device_count())
    if step == 0:
      writer.config(config.to_dict(), str(config))
    batches = input_pipeline.create_train_iterator(
        config, seed=config.seed, start_step=meta.get("input_position", step),
        process_index=shard_index, process_count=shard_count)
    progress = Progress(step, plan.num_steps, config.batch_size)
    pending, train_metrics, eval_metrics = [], {}, {}
    losses, last_saved = divergence.LossWatch(), (step or None)
    with stop:
      while step < plan.num_steps:
        state, metrics = train_fn(state, place(next(batches)))
        step += 1
        pending.append(metrics)
        losses.add(step, metrics["loss"])
        is_log, is_eval = step % config.log_every_steps == 0, step % plan.eval_every == 0
        is_last, is_save = step == plan.num_steps, checkpointer.is_save_step(step)
        if is_log or is_eval or is_save or is_last or stop.requested:
          losses.check(last_saved)
        if is_log or is_last:
          train_metrics = _report_training(step, pending, progress, writer)
          pending = []
        if is_eval or is_last:
          eval_metrics = run_eval(step, state)
          history.append({"step": step, **eval_metrics})
          if config.schedule.name == "plateau":
            state = state.replace(plateau=plateau_fn(state.plateau, eval_metrics["top1_error"]))
          progress.restart(step)
        if is_save or is_last or stop.requested:
          divergence.check_params_finite(step, state.params, last_saved)
          checkpointer.save(step, state, {"input_position": step, "eval_history": history,
                                          "wall_seconds": elapsed()}, force=True)
          last_saved = step
        if stop.requested:
          writer.flush()
          raise preemption.Preempted(step, stop.signal_name)
    if not eval_metrics:  # the last checkpoint was final but the summary was never written
      eval_metrics = run_eval(step, state)
    record = {
        "step": step, "num_train_steps": plan.num_steps, "epochs": step / plan.steps_per_epoch,
        **{f"eval_{name}": value for name, value in eval_metrics.items()},
        **{f"train_{name}": value for name, value in train_metrics.items()},
        "wall_seconds": elapsed(), "num_params": num_params, "devices": jax.device_count(),
        "eval_history": history, "config_overrides": dict(overrides or {}),
        "config": json.loads(config.to_json_best_effort()),
    }
    if is_chief:
      summaries.write_json_atomically(summary_path, record)
    logging.info("Finished at step %d: eval top-1 error %.4f, top-5 error %.4f, loss %.4f, "
                 "%.0f s in all. Summary: %s", step, record["eval_top1_error"],
                 record["eval_top5_error"], record["eval_loss"], record["wall_seconds"], summary_path)
    return record
  finally:
    writer.close()
    checkpointer.close()


def _report_training(step: int, pending: list[dict], progress: Progress, writer) -> dict:
  """Averages the steps' metrics since the last report; logs and writes them with throughput."""
  fetched = jax.device_get(pending)
  metrics = {name: float(np.mean([m[name] for m in fetched])) for name in fetched[0]}
  images_per_second, eta = progress.report(step)
  metrics["images_per_second"] = images_per_second
  writer.scalars(step, {f"train_{name}": value for name, value in metrics.items()})
  logging.info("step %d/%d  loss %.4f  top-1 error %.4f  lr %.3g  %.1f img/s  ETA %s",
               step, progress.num_steps, metrics["loss"], metrics["top1_error"],
               metrics["learning_rate"], images_per_second, _format_seconds(eta))
  return metrics


def _report_eval(step: int, metrics: dict, state: TrainState, writer) -> None:
  """Logs an evaluation; writes its scalars and the conv1 kernels (the paper's Figure 3)."""
  from alexnet_jax import summaries  # pylint: disable=g-import-not-at-top
  writer.scalars(step, {f"eval_{name}": value for name, value in metrics.items() if name != "count"})
  writer.images(step, summaries.conv1_kernel_images(jax.device_get(state.params["convs"][0]["kernel"])))
  writer.flush()
  logging.info("eval at step %d: loss %.4f  top-1 error %.4f  top-5 error %.4f  (%d examples)",
               step, metrics["loss"], metrics["top1_error"], metrics["top5_error"], metrics["count"])


def _format_seconds(seconds: float) -> str:
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}"
