"""The jit-compiled train and eval steps: pure functions of the state and a batch.

They see the device mesh only through ``parallel/sharding.py`` (``forward``), so tower parallelism
needs no change here. Imports neither TensorFlow nor the input pipeline.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from alexnet_jax.parallel import sharding
from alexnet_jax.train import optimizers
from alexnet_jax.train.state import ModelDef, TrainState


def classification_metrics(log_probs: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
  """Per-example cross-entropy and top-1 / top-5 errors (0 or 1) from log-probabilities."""
  loss = -jnp.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]
  top1_error = jnp.argmax(log_probs, axis=-1) != labels
  _, top5 = jax.lax.top_k(log_probs, min(5, log_probs.shape[-1]))
  top5_error = ~jnp.any(top5 == labels[:, None], axis=-1)
  return {"loss": loss, "top1_error": top1_error.astype(jnp.float32), "top5_error": top5_error.astype(jnp.float32)}


def smoothed_loss(log_probs: jax.Array, labels: jax.Array, smoothing: float) -> jax.Array:
  """Per-example cross-entropy against label-smoothed targets: 1 - smoothing + smoothing / K on the
  label, smoothing / K on each of the other K - 1 classes (Szegedy et al. 2016)."""
  num_classes = log_probs.shape[-1]
  targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes, dtype=log_probs.dtype), smoothing)
  return -(targets * log_probs).sum(axis=-1)


def train_step(
  state: TrainState,
  batch: dict,
  *,
  model_def: ModelDef,
  tx: optax.GradientTransformation,
  schedule: optimizers.Schedule,
  mesh,
  parallelism: str = "towers",
  preprocess: Callable | None = None,
  label_smoothing: float = 0.0,
  ema_decay: float = 0.0,
) -> tuple[TrainState, dict]:
  """One SGD step on a batch; returns the new state and the batch's mean metrics.

  ``preprocess(batch, step)`` (``augment.train_inputs``: crops, flips, colour noise, the mean) turns
  the batch's uint8 squares into the model's input; without it ``batch["image"]`` is the input. With
  ``label_smoothing`` the gradient is that of :func:`smoothed_loss`; the reported "loss" stays the
  plain cross-entropy, the number every evaluation reports. A state with ``ema_params`` moves them
  towards the new parameters (:func:`ema_update`)."""
  dropout_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
  images = batch["image"] if preprocess is None else preprocess(batch, state.step)

  def loss_fn(params):
    logits = sharding.forward(model_def.train_model(params, dropout_key), images, mesh, parallelism)
    log_probs = jax.nn.log_softmax(logits)
    metrics = classification_metrics(log_probs, batch["label"])
    if not label_smoothing:
      return metrics["loss"].mean(), metrics
    return smoothed_loss(log_probs, batch["label"], label_smoothing).mean(), metrics

  grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params)
  learning_rate, bias_learning_rate = optimizers.rates_of(schedule, state.plateau, state.step)
  opt_state = optimizers.set_learning_rate(state.opt_state, learning_rate, bias_learning_rate)
  updates, opt_state = tx.update(grads, opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {name: value.mean() for name, value in metrics.items()}
  metrics["learning_rate"] = learning_rate
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
  if state.ema_params is not None:
    new_state = new_state.replace(ema_params=ema_update(state.ema_params, params, state.step, ema_decay))
  return new_state, metrics


def ema_decay_at(step: jax.Array, decay: float) -> jax.Array:
  """The moving average's decay at ``step`` (0-based): ``min(decay, (1 + step) / (10 + step))``,
  so that the first updates, from the random initial values, are forgotten quickly
  (``tf.train.ExponentialMovingAverage``'s ``num_updates`` rule)."""
  step = step.astype(jnp.float32)
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def ema_update(ema_params: nnx.State, params: nnx.State, step: jax.Array, decay: float) -> nnx.State:
  """``ema <- d * ema + (1 - d) * params`` with ``d = ema_decay_at(step, decay)``."""
  rate = 1.0 - ema_decay_at(step, decay)
  return jax.tree.map(lambda average, value: average + rate * (value - average), ema_params, params)


def eval_log_probs(params: nnx.State, images: jax.Array, *, model_def: ModelDef, mesh, parallelism: str = "towers"):
  """Eval-mode log-probabilities (batch, classes) of a batch of test views.

  Ten-crop batches (images of rank 5: batch, crops, H, W, C) average the softmax over the crops.
  """
  model = model_def.eval_model(params)
  if images.ndim == 5:
    size, crops = images.shape[:2]
    logits = sharding.forward(model, images.reshape(size * crops, *images.shape[2:]), mesh, parallelism)
    probs = jax.nn.softmax(logits).reshape(size, crops, -1).mean(axis=1)
    return jnp.log(jnp.maximum(probs, jnp.finfo(probs.dtype).tiny))
  return jax.nn.log_softmax(sharding.forward(model, images, mesh, parallelism))


def eval_step(
  params: nnx.State,
  batch: dict,
  *,
  model_def: ModelDef,
  mesh,
  parallelism: str = "towers",
  with_log_probs: bool = False,
  preprocess: Callable | None = None,
):
  """Sums of loss, errors and example count over the real (mask 1) examples of a batch.

  ``preprocess(images)`` (``augment.eval_views``) turns the batch's uint8 squares into the test
  views; without it ``batch["image"]`` holds them. ``with_log_probs`` also returns every example's
  log-probabilities, ``(sums, log_probs)``: what a per-class evaluation needs, from the same forward pass.
  """
  images = batch["image"] if preprocess is None else preprocess(batch["image"])
  log_probs = eval_log_probs(params, images, model_def=model_def, mesh=mesh, parallelism=parallelism)
  mask = batch["mask"].astype(jnp.float32)
  sums = {name: (value * mask).sum() for name, value in classification_metrics(log_probs, batch["label"]).items()}
  sums["count"] = mask.sum()
  return (sums, log_probs) if with_log_probs else sums


def jit_train_step(**options) -> Callable:
  """:func:`train_step` compiled with its keyword ``options`` fixed (the model, optimizer, schedule,
  mesh, ...); the state's buffers are donated."""
  return jax.jit(functools.partial(train_step, **options), donate_argnums=0)


def jit_eval_step(
  model_def: ModelDef,
  mesh,
  parallelism: str = "towers",
  with_log_probs: bool = False,
  preprocess: Callable | None = None,
) -> Callable:
  return jax.jit(
    functools.partial(
      eval_step,
      model_def=model_def,
      mesh=mesh,
      parallelism=parallelism,
      with_log_probs=with_log_probs,
      preprocess=preprocess,
    )
  )


def evaluate(eval_fn: Callable, params: nnx.State, batches, place: Callable) -> dict[str, float]:
  """Mean loss and errors over every real example of the eval iterator."""
  totals = {}
  for batch in batches:
    totals = add_sums(totals, eval_fn(params, place(batch)))
  return mean_metrics(totals)


def add_sums(totals: dict, sums: dict) -> dict:
  """Running totals of :func:`eval_step`'s sums (device arrays: no host transfer per batch)."""
  return {name: totals.get(name, 0.0) + value for name, value in sums.items()}


def mean_metrics(totals: dict) -> dict[str, float]:
  """Totals of :func:`eval_step`'s sums -> mean loss and errors per example, plus the count."""
  totals = dict(jax.device_get(totals))
  count = float(totals.pop("count"))
  return {name: float(value) / count for name, value in totals.items()} | {"count": count}
