"""The update rules and learning-rate schedules, as optax transformations and plain functions.

Two update rules, both SGD with momentum and L2 weight decay:

* ``"paper_sgd"`` -- the paper's rule (§5), with the learning rate *inside* the momentum trace::

      v <- m * v - wd * eps * w - eps * g
      w <- w + v

* ``"sgd"`` -- optax's usual form, the learning rate applied *after* the trace::

      t <- m * t + (g + wd * w)
      w <- w - eps * t

Both decay every parameter with ``decay_biases=True``; with ``False`` (the authors' code: cuda-convnet2
sets ``wc`` on weights only, Caffe ``decay_mult: 0`` on biases) the ``wd * w`` term is dropped for the
biases, so biases that start at 1 are not pulled towards 0.

While ``eps`` is constant the two are the same (``v = -eps * t``). They differ when ``eps``
changes: the paper's velocity keeps the steps taken at the old rate, optax's rescales them at
once. The paper's plateau drops (divide by 10) make the difference visible.

The learning rate of step ``t`` is ``schedule(t) * lr_scale``: ``schedule`` depends only on the
step (constant, cosine, piecewise; each with linear warm-up) and ``lr_scale`` is the plateau
state's multiplier (1 for the other schedules). The train step writes that value into the
optimizer state's ``hyperparams`` (see :func:`set_learning_rate`), so the rate in use is
checkpointed with the rest of the optimizer state.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("sgd", "paper_sgd")
SCHEDULES = ("constant", "cosine", "piecewise", "plateau")

if TYPE_CHECKING:  # configs are ml_collections ConfigDicts; the benchmark runs without it
  import ml_collections


class PaperSgdState(NamedTuple):
  """The velocity ``v`` of the paper's rule (one array per parameter)."""

  velocity: optax.Updates


def is_decayed(params) -> optax.Params:
  """A tree of bools like ``params``: True for the weights (kernels), False for the biases."""
  return jax.tree_util.tree_map_with_path(
    lambda path, _: not any(getattr(key, "key", None) == "bias" for key in path), params
  )


def decay_mask(decay_biases: bool):
  """optax's ``mask`` argument: every parameter (None) or the weights only (:func:`is_decayed`)."""
  return None if decay_biases else is_decayed


def paper_sgd(
  learning_rate: float, momentum: float = 0.9, weight_decay: float = 5e-4, *, decay_biases: bool = True
) -> optax.GradientTransformation:
  """The paper's update: ``v <- m v - wd eps w - eps g``; the update applied to ``w`` is ``v``.

  ``decay_biases=False`` drops the ``wd eps w`` term for the biases."""

  def init_fn(params):
    return PaperSgdState(velocity=jax.tree.map(jnp.zeros_like, params))

  def update_fn(grads, state, params=None):
    if params is None:
      raise ValueError("paper_sgd needs the parameters for its weight decay term")
    decayed = jax.tree.map(lambda _: True, params) if decay_biases else is_decayed(params)
    velocity = jax.tree.map(
      lambda v, g, w, d: momentum * v - learning_rate * (weight_decay * w * d + g),
      state.velocity,
      grads,
      params,
      decayed,
    )
    return velocity, PaperSgdState(velocity=velocity)

  return optax.GradientTransformation(init_fn, update_fn)


def sgd(
  learning_rate: float, momentum: float = 0.9, weight_decay: float = 5e-4, *, decay_biases: bool = True
) -> optax.GradientTransformation:
  """optax's SGD with momentum and coupled L2 weight decay (``g + wd w`` enters the trace; with
  ``decay_biases=False`` only for the weights)."""
  return optax.chain(
    optax.add_decayed_weights(weight_decay, mask=decay_mask(decay_biases)), optax.sgd(learning_rate, momentum=momentum)
  )


_RULES = {"sgd": sgd, "paper_sgd": paper_sgd}


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The configured update rule (``config.optimizer``)."""
  return make_optimizer(
    config.optimizer.name,
    learning_rate=config.optimizer.learning_rate,
    momentum=config.optimizer.momentum,
    weight_decay=config.optimizer.weight_decay,
    decay_biases=config.optimizer.decay_biases,
  )


def make_optimizer(
  name: str, *, learning_rate: float, momentum: float, weight_decay: float, decay_biases: bool = True
) -> optax.GradientTransformation:
  """Update rule ``name`` with its hyper-parameters stored in the optimizer state, where the train
  step sets each step's learning rate (:func:`set_learning_rate`). ``decay_biases`` is fixed, not stored."""
  rule = functools.partial(_RULES[name], decay_biases=decay_biases)
  return optax.inject_hyperparams(rule)(learning_rate=learning_rate, momentum=momentum, weight_decay=weight_decay)


def set_learning_rate(opt_state: optax.OptState, learning_rate: jax.Array) -> optax.OptState:
  """``opt_state`` (from :func:`create_optimizer`) with the learning rate of the next update."""
  hyperparams = dict(
    opt_state.hyperparams, learning_rate=jnp.asarray(learning_rate, opt_state.hyperparams["learning_rate"].dtype)
  )
  return opt_state._replace(hyperparams=hyperparams)


def create_schedule(config: ml_collections.ConfigDict, total_steps: int) -> Callable:
  """Step -> learning rate before the plateau multiplier; linear warm-up from 0 first.

  "constant" and "plateau" hold the base rate; "cosine" decays it to 0 at ``total_steps``;
  "piecewise" multiplies it by ``decay_factor`` at each boundary (fractions of ``total_steps``).
  """
  base = config.optimizer.learning_rate
  warmup = min(config.schedule.warmup_steps, max(total_steps - 1, 0))
  name = config.schedule.name
  if name in ("constant", "plateau"):
    main = optax.constant_schedule(base)
  elif name == "cosine":
    main = optax.cosine_decay_schedule(base, decay_steps=max(total_steps - warmup, 1))
  elif name == "piecewise":
    boundaries = {
      round(fraction * total_steps) - warmup: config.schedule.decay_factor for fraction in config.schedule.boundaries
    }
    main = optax.piecewise_constant_schedule(base, boundaries)
  else:
    raise ValueError(f"config.schedule.name={name!r} is not one of {SCHEDULES}")
  if warmup == 0:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, base, warmup), main], [warmup])


class PlateauState(NamedTuple):
  """Reduce-on-plateau bookkeeping; lives in the train state so checkpoints carry it."""

  lr_scale: jax.Array  # multiplies the schedule's learning rate
  best_error: jax.Array  # lowest validation top-1 error seen so far
  bad_evals: jax.Array  # evaluations since the last improvement (or drop)
  drops: jax.Array  # how many times the rate was cut


def init_plateau() -> PlateauState:
  return PlateauState(
    lr_scale=jnp.float32(1.0), best_error=jnp.float32(jnp.inf), bad_evals=jnp.int32(0), drops=jnp.int32(0)
  )


def update_plateau(
  state: PlateauState, eval_error: float, *, patience: int, factor: float, max_drops: int
) -> PlateauState:
  """The paper's rule: after ``patience`` evaluations without a new best validation error,
  multiply the rate by ``factor`` (0.1), at most ``max_drops`` times."""
  eval_error = jnp.float32(eval_error)
  improved = eval_error < state.best_error
  bad_evals = jnp.where(improved, 0, state.bad_evals + 1)
  drop = (bad_evals >= patience) & (state.drops < max_drops)
  return PlateauState(
    lr_scale=jnp.where(drop, state.lr_scale * factor, state.lr_scale).astype(jnp.float32),
    best_error=jnp.minimum(state.best_error, eval_error),
    bad_evals=jnp.where(drop, 0, bad_evals).astype(jnp.int32),
    drops=(state.drops + drop).astype(jnp.int32),
  )
