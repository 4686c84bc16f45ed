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


def train_step(
  state: TrainState,
  batch: dict,
  *,
  model_def: ModelDef,
  tx: optax.GradientTransformation,
  schedule: Callable,
  mesh,
  parallelism: str = "towers",
  preprocess: Callable | None = None,
) -> tuple[TrainState, dict]:
  """One SGD step on a batch; returns the new state and the batch's mean metrics.

  ``preprocess`` (``pipeline.device_preprocessing``) turns a batch of uint8 views into the model's
  input on the device; without it ``batch["image"]`` is the input."""
  dropout_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
  images = batch["image"] if preprocess is None else preprocess(batch)

  def loss_fn(params):
    logits = sharding.forward(model_def.train_model(params, dropout_key), images, mesh, parallelism)
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
):
  """Sums of loss, errors and example count over the real (mask 1) examples of a batch.

  ``with_log_probs`` also returns every example's log-probabilities, ``(sums, log_probs)``: what a
  per-class evaluation needs, from the same forward pass.
  """
  log_probs = eval_log_probs(params, batch["image"], model_def=model_def, mesh=mesh, parallelism=parallelism)
  mask = batch["mask"].astype(jnp.float32)
  sums = {name: (value * mask).sum() for name, value in classification_metrics(log_probs, batch["label"]).items()}
  sums["count"] = mask.sum()
  return (sums, log_probs) if with_log_probs else sums


def jit_train_step(
  model_def: ModelDef,
  tx: optax.GradientTransformation,
  schedule: Callable,
  mesh,
  parallelism: str = "towers",
  preprocess: Callable | None = None,
) -> Callable:
  """``train_step`` compiled for this model, optimizer and mesh; the state's buffers are donated."""
  step = functools.partial(
    train_step, model_def=model_def, tx=tx, schedule=schedule, mesh=mesh, parallelism=parallelism, preprocess=preprocess
  )
  return jax.jit(step, donate_argnums=0)


def jit_eval_step(model_def: ModelDef, mesh, parallelism: str = "towers", with_log_probs: bool = False) -> Callable:
  return jax.jit(
    functools.partial(eval_step, model_def=model_def, mesh=mesh, parallelism=parallelism, with_log_probs=with_log_probs)
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
