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
biases, so biases that start at 1 are not pulled towards 0. ``bias_lr_multiplier`` r gives the biases
the rate ``r * eps`` (Caffe's ``lr_mult: 2``; cuda-convnet2's ``epsB`` starts at twice ``epsW``): in
``paper_sgd`` the whole bias step ``-r eps (wd w + g)`` is scaled, in ``sgd`` the bias update
``-eps t`` -- the same thing in each rule's own form. A schedule of the biases' own (cuda-convnet2's ``epsB``,
``schedule.bias_dexp_steps``) replaces ``r * eps`` by its rate, which the optimizer state then carries
beside ``eps`` (``bias_learning_rate``).

While ``eps`` is constant the two are the same (``v = -eps * t``). They differ when ``eps``
changes: the paper's velocity keeps the steps taken at the old rate, optax's rescales them at
once. The paper's plateau drops (divide by 10) make the difference visible.

The learning rate of step ``t`` is ``schedule(t) * lr_scale`` (:func:`learning_rate_at`): ``schedule``
depends only on the step (constant, cosine, piecewise, step, cuda-convnet2's dexp; each with linear warm-up) and
``lr_scale`` is the plateau state's multiplier (1 for the other schedules). A :class:`Schedule` holds one such
function per parameter group, the weights' and the biases' (:func:`rates_of`, :func:`rates_at`). The train step
writes the rates into the optimizer state's ``hyperparams`` (see :func:`set_learning_rate`), so the rates in use
are checkpointed with the rest of the optimizer state. A run applies the plateau rule through one call,
:meth:`PlateauRule.after_eval`, after each evaluation.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import optax

from alexnet_jax.model import alexnet
from alexnet_jax.train.options import SCHEDULES

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


def is_bias(params) -> optax.Params:
  """A tree of bools like ``params``: True for the biases (the parameters :func:`is_decayed` leaves out)."""
  return jax.tree.map(lambda weight: not weight, is_decayed(params))


class SgdOptions(NamedTuple):
  """The hyper-parameters of both update rules. ``learning_rate``, ``momentum`` and ``weight_decay``
  are :data:`TRACED`: :func:`make_optimizer` keeps them in the optimizer state, and so
  ``bias_learning_rate`` when it is a number (the biases follow a schedule of their own); None leaves
  it out of the state and gives the biases ``bias_lr_multiplier * learning_rate``."""

  learning_rate: float
  momentum: float = 0.9
  weight_decay: float = 5e-4
  decay_biases: bool = True
  bias_lr_multiplier: float = 1.0
  bias_learning_rate: float | None = None


TRACED = ("learning_rate", "momentum", "weight_decay", "bias_learning_rate")


def leaf_rates(params, options: SgdOptions) -> optax.Params:
  """A tree like ``params`` of each leaf's learning rate: ``learning_rate`` for the weights; for the biases
  ``bias_learning_rate`` (their own schedule's) or else ``bias_lr_multiplier * learning_rate``."""
  biases = options.bias_learning_rate
  if biases is None:
    biases = options.bias_lr_multiplier * options.learning_rate
  return jax.tree.map(lambda bias: biases if bias else options.learning_rate, is_bias(params))


def paper_sgd(options: SgdOptions) -> optax.GradientTransformation:
  """The paper's update: ``v <- m v - wd eps w - eps g``; the update applied to ``w`` is ``v``.

  ``decay_biases=False`` drops the ``wd eps w`` term for the biases; their rate eps_b (:func:`leaf_rates`:
  ``r eps`` with Caffe's ``lr_mult`` r, or cuda-convnet2's ``epsB``) makes their step ``v <- m v - eps_b (wd w
  + g)``: the rate inside the trace, as both references write it."""

  def init_fn(params):
    return PaperSgdState(velocity=jax.tree.map(jnp.zeros_like, params))

  def update_fn(grads, state, params=None):
    if params is None:
      raise ValueError("paper_sgd needs the parameters for its weight decay term")
    decayed = jax.tree.map(lambda _: True, params) if options.decay_biases else is_decayed(params)
    velocity = jax.tree.map(
      lambda v, g, w, d, eps: options.momentum * v - eps * (options.weight_decay * w * d + g),
      state.velocity,
      grads,
      params,
      decayed,
      leaf_rates(params, options),
    )
    return velocity, PaperSgdState(velocity=velocity)

  return optax.GradientTransformation(init_fn, update_fn)


def sgd(options: SgdOptions) -> optax.GradientTransformation:
  """optax's SGD with momentum and coupled L2 weight decay (``g + wd w`` enters the trace; with
  ``decay_biases=False`` only for the weights); the biases' update ``-eps t`` times ``bias_lr_multiplier``,
  or ``-eps_b t`` with ``bias_learning_rate`` eps_b (each group its own trace and rate).

  With the multiplier at 1 and no rate of the biases' own the chain has no stage for the biases, so its
  state is what it was before those options existed (older checkpoints restore)."""
  decay = optax.add_decayed_weights(options.weight_decay, mask=decay_mask(options.decay_biases))
  if options.bias_learning_rate is not None:
    groups = {
      "weights": optax.sgd(options.learning_rate, momentum=options.momentum),
      "biases": optax.sgd(options.bias_learning_rate, momentum=options.momentum),
    }
    labels = lambda params: jax.tree.map(lambda bias: "biases" if bias else "weights", is_bias(params))
    return optax.chain(decay, optax.multi_transform(groups, labels))
  stages = [decay, optax.sgd(options.learning_rate, momentum=options.momentum)]
  if options.bias_lr_multiplier != 1.0:
    stages.append(optax.masked(optax.scale(options.bias_lr_multiplier), is_bias))
  return optax.chain(*stages)


_RULES = {"sgd": sgd, "paper_sgd": paper_sgd}


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The configured update rule (``config.optimizer``), applied to the layers ``config.trainable`` names; with a
  schedule of the biases' own (:func:`has_bias_schedule`) its state carries their rate, which the train step sets
  each step."""
  fields = {field: config.optimizer[field] for field in SgdOptions._fields if field != "bias_learning_rate"}
  if has_bias_schedule(config):
    fields["bias_learning_rate"] = bias_base_rate(config)
  return make_optimizer(config.optimizer.name, trainable=config.trainable, **fields)


def is_trainable(params, pattern: str) -> optax.Params:
  """A tree of bools like ``params``: True for the parameters of the layers whose name
  (``alexnet.LAYER_NAMES``) ``pattern`` matches whole; every parameter for the empty pattern."""
  compiled = re.compile(pattern)
  return jax.tree_util.tree_map_with_path(
    lambda path, _: not pattern or compiled.fullmatch(alexnet.layer_name(alexnet.param_path(path))) is not None,
    params,
  )


def frozen_except(tx: optax.GradientTransformation, trainable: str) -> optax.GradientTransformation:
  """``tx`` on the layers ``trainable`` names (:func:`is_trainable`), a zero update elsewhere: the
  frozen parameters get neither the gradient step nor the weight decay, and keep no momentum."""
  if not trainable:
    return tx
  labels = lambda params: jax.tree.map(lambda train: "train" if train else "freeze", is_trainable(params, trainable))
  return optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, labels)


def make_optimizer(name: str, *, trainable: str = "", **hyperparameters) -> optax.GradientTransformation:
  """Update rule ``name`` with ``hyperparameters`` (:class:`SgdOptions`' fields) on the layers ``trainable``
  names (:func:`frozen_except`; "" = all); the :data:`TRACED` ones are stored in the optimizer state, where
  the train step sets each step's learning rate (:func:`set_learning_rate`), the others are fixed."""
  update_rule, fixed = _RULES[name], SgdOptions(**hyperparameters)

  # inject_hyperparams traces the factory's numeric arguments by name (a None bias_learning_rate stays out).
  def rule(learning_rate, momentum, weight_decay, bias_learning_rate=None):
    traced = dict(learning_rate=learning_rate, momentum=momentum, weight_decay=weight_decay)
    return frozen_except(update_rule(fixed._replace(**traced, bias_learning_rate=bias_learning_rate)), trainable)

  return optax.inject_hyperparams(rule)(**{field: getattr(fixed, field) for field in TRACED})


def set_learning_rate(
  opt_state: optax.OptState, learning_rate: jax.Array, bias_learning_rate: jax.Array | None = None
) -> optax.OptState:
  """``opt_state`` (from :func:`create_optimizer`) with the learning rates of the next update: the weights'
  and, where the state carries one (a schedule of the biases' own), the biases'."""
  hyperparams, dtype = dict(opt_state.hyperparams), opt_state.hyperparams["learning_rate"].dtype
  hyperparams["learning_rate"] = jnp.asarray(learning_rate, dtype)
  if "bias_learning_rate" in hyperparams:
    if bias_learning_rate is None:
      raise ValueError("this optimizer's biases follow a schedule of their own: pass bias_learning_rate")
    hyperparams["bias_learning_rate"] = jnp.asarray(bias_learning_rate, dtype)
  return opt_state._replace(hyperparams=hyperparams)


class Schedule(NamedTuple):
  """Step -> learning rate of each parameter group, before the plateau multiplier. Calling it gives the
  weights' rate (the one rate of every schedule before the groups); ``biases`` gives the biases'
  (``bias_lr_multiplier`` times the weights', or their own schedule's)."""

  weights: Callable
  biases: Callable

  def __call__(self, step):
    return self.weights(step)


def shared_schedule(weights: Callable, bias_lr_multiplier: float = 1.0) -> Schedule:
  """A :class:`Schedule` whose biases follow ``weights`` at ``bias_lr_multiplier`` times its rate."""
  return Schedule(weights, lambda step: bias_lr_multiplier * weights(step))


def has_bias_schedule(config: ml_collections.ConfigDict) -> bool:
  """Whether the biases follow a ``dexp`` schedule of their own (cuda-convnet2's ``epsB``)."""
  return config.schedule.bias_dexp_steps >= 1


def bias_base_rate(config: ml_collections.ConfigDict) -> float:
  """The biases' base rate: ``bias_lr_multiplier`` times the weights' (0.04 = 2 x 0.02 in cuda-convnet2)."""
  return config.optimizer.learning_rate * config.optimizer.bias_lr_multiplier


def create_schedule(config: ml_collections.ConfigDict, total_steps: int) -> Schedule:
  """Each parameter group's step -> learning rate before the plateau multiplier; linear warm-up from 0 first.

  "constant" and "plateau" hold the base rate; "cosine" decays it to 0 at ``total_steps``;
  "piecewise" multiplies it by ``decay_factor`` at each boundary (fractions of ``total_steps``);
  "step" multiplies it by ``decay_factor`` every ``step_every`` steps, at most ``max_drops`` times
  (:func:`step_schedule`; counted from step 0, warm-up included); "dexp" is cuda-convnet2's
  (:func:`dexp_schedule`). The biases follow the weights' schedule at ``bias_lr_multiplier`` times its
  rate, or a dexp schedule of their own from :func:`bias_base_rate` (``schedule.bias_dexp_*``).
  """
  warmup = min(config.schedule.warmup_steps, max(total_steps - 1, 0))
  weights = _with_warmup(_main_schedule(config, total_steps, warmup), config.optimizer.learning_rate, warmup)
  if not has_bias_schedule(config):
    return shared_schedule(weights, config.optimizer.bias_lr_multiplier)
  base = bias_base_rate(config)
  own = dexp_schedule(base, config.schedule.bias_dexp_target_factor, config.schedule.bias_dexp_steps, total_steps)
  return Schedule(weights, _with_warmup(lambda count: own(count + warmup), base, warmup))


def _with_warmup(main: Callable, base: float, warmup: int) -> Callable:
  """``main`` (counted from the end of the warm-up) after ``warmup`` steps rising linearly from 0 to ``base``."""
  if warmup == 0:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, base, warmup), main], [warmup])


def _main_schedule(config: ml_collections.ConfigDict, total_steps: int, warmup: int) -> Callable:
  """The weights' schedule after the warm-up, counted from its end (:func:`create_schedule`)."""
  base, name = config.optimizer.learning_rate, config.schedule.name
  if name in ("constant", "plateau"):
    return optax.constant_schedule(base)
  if name == "cosine":
    return optax.cosine_decay_schedule(base, decay_steps=max(total_steps - warmup, 1))
  if name == "piecewise":
    boundaries = {
      round(fraction * total_steps) - warmup: config.schedule.decay_factor for fraction in config.schedule.boundaries
    }
    return optax.piecewise_constant_schedule(base, boundaries)
  if name == "step":
    steps = step_schedule(base, config.schedule.step_every, config.schedule.decay_factor, config.schedule.max_drops)
    return lambda count: steps(count + warmup)  # join_schedules counts from the end of the warm-up
  if name == "dexp":
    dexp = dexp_schedule(base, config.schedule.dexp_target_factor, config.schedule.dexp_steps, total_steps)
    return lambda count: dexp(count + warmup)
  raise ValueError(f"config.schedule.name={name!r} is not one of {SCHEDULES}")


def dexp_rates(base: float, target_factor: float, num_steps: int) -> list[float]:
  """cuda-convnet2's ``dexp[base;tgtFactor;numSteps]`` rates (``lr.cu`` ``DiscreteExpParameterSchedule``):
  ``base * (1 / tgtFactor) ** (i / (numSteps - 1))`` for ``i < numSteps - 1``, the last ``base / tgtFactor``."""
  return [base * (1 / target_factor) ** (i / (num_steps - 1)) for i in range(num_steps - 1)] + [base / target_factor]


def dexp_schedule(base: float, target_factor: float, num_steps: int, total_steps: int) -> Callable:
  """Step -> rate of :func:`dexp_rates`: at progress ``p = step / total_steps`` the first ``rates[i]`` with
  ``p <= (i + 1) / num_steps`` (lr.cu's ``getValue``), the last one after. Update ``t`` is past rate ``i``
  once ``t > floor((i + 1) * total_steps / num_steps)``: whole steps, so no rounding moves a boundary."""
  rates = jnp.asarray(dexp_rates(base, target_factor, num_steps), jnp.float32)
  ends = jnp.asarray([(i + 1) * total_steps // num_steps for i in range(num_steps - 1)], jnp.int32)
  return lambda step: rates[jnp.sum(jnp.asarray(step) > ends)]


def step_schedule(base: float, every: int, factor: float, max_drops: int) -> Callable:
  """``base * factor ** min(step // every, max_drops)``: Caffe's ``lr_policy: "step"`` (``stepsize``,
  ``gamma``) with a cap on the number of drops."""
  return lambda step: base * factor ** jnp.minimum(jnp.asarray(step) // every, max_drops)


def learning_rate_at(schedule: Callable, plateau: PlateauState, step) -> jax.Array:
  """The weights' rate of the update made at ``step``: the schedule's times the plateau multiplier."""
  return schedule(step) * plateau.lr_scale


def rates_of(schedule: Schedule, plateau: PlateauState, step) -> tuple[jax.Array, jax.Array]:
  """(weights' rate, biases' rate) of the update made at ``step``: each group's, times the plateau multiplier.
  The train step sets these, the loop logs them."""
  return learning_rate_at(schedule, plateau, step), schedule.biases(step) * plateau.lr_scale


def rates_at(config: ml_collections.ConfigDict, total_steps: int, step: int) -> tuple[float, float]:
  """(weights' rate, biases' rate) of update ``step`` of a ``total_steps`` run of ``config``, as its schedule
  gives them before any plateau drop."""
  weights, biases = rates_of(create_schedule(config, total_steps), init_plateau(), step)
  return float(weights), float(biases)


class PlateauState(NamedTuple):
  """Reduce-on-plateau bookkeeping; lives in the train state so checkpoints carry it."""

  lr_scale: jax.Array  # multiplies the schedule's learning rate
  best_error: jax.Array  # the validation top-1 error of the last improvement (lowest so far when min_delta is 0)
  bad_evals: jax.Array  # evaluations since the last improvement (or drop)
  drops: jax.Array  # how many times the rate was cut


def init_plateau() -> PlateauState:
  return PlateauState(
    lr_scale=jnp.float32(1.0), best_error=jnp.float32(jnp.inf), bad_evals=jnp.int32(0), drops=jnp.int32(0)
  )


def update_plateau(
  state: PlateauState, eval_error: float, *, patience: int, factor: float, max_drops: int, min_delta: float = 0.0
) -> PlateauState:
  """The paper's rule: after ``patience`` evaluations without an improvement of the validation
  error, multiply the rate by ``factor`` (0.1), at most ``max_drops`` times.

  An improvement is an error lower than ``best_error - min_delta``; only an improvement moves
  ``best_error``, so a slow creep below it adds up until it counts (Keras' ``ReduceLROnPlateau``).
  With ``min_delta`` 0 any strictly lower error is one."""
  eval_error = jnp.float32(eval_error)
  improved = eval_error < state.best_error - min_delta
  bad_evals = jnp.where(improved, 0, state.bad_evals + 1)
  drop = (bad_evals >= patience) & (state.drops < max_drops)
  return PlateauState(
    lr_scale=jnp.where(drop, state.lr_scale * factor, state.lr_scale).astype(jnp.float32),
    best_error=jnp.where(improved, eval_error, state.best_error).astype(jnp.float32),
    bad_evals=jnp.where(drop, 0, bad_evals).astype(jnp.int32),
    drops=(state.drops + drop).astype(jnp.int32),
  )


def plateau_drop(
  before: PlateauState, after: PlateauState, *, schedule: Callable, step: int, epoch: float, eval_error: float
) -> dict | None:
  """What :func:`update_plateau` decided at the evaluation after ``step``, if it cut the rate: a
  JSON-ready record of the drop (``summary.json``'s ``lr_drops``, the log, TensorBoard), else None.

  The rates are those of the next update (step ``step``, 0-based), before and after the cut."""
  before, after = jax.device_get((before, after))
  if int(after.drops) == int(before.drops):
    return None
  return {
    "drop": int(after.drops),
    "step": int(step),
    "epoch": float(epoch),
    "eval_top1_error": float(eval_error),
    "best_top1_error": float(before.best_error),
    "old_learning_rate": float(learning_rate_at(schedule, before, step)),
    "new_learning_rate": float(learning_rate_at(schedule, after, step)),
  }


# The plateau update on the devices that hold the plateau record (the train state's): the rule's
# numbers are compile-time constants, the evaluation's error the one traced argument.
_update_plateau_jitted = jax.jit(update_plateau, static_argnames=("patience", "factor", "max_drops", "min_delta"))


@dataclasses.dataclass(frozen=True)
class PlateauRule:
  """A run's plateau rule behind one call: :meth:`after_eval` takes the plateau record and an
  evaluation's top-1 error, and returns the new record and the drop it made, if any.

  ``enabled`` is False for the schedules other than "plateau": then the record never changes.
  """

  schedule: Callable  # the step schedule the plateau multiplier scales (for the drop's rates)
  patience: int
  factor: float
  max_drops: int
  min_delta: float = 0.0
  enabled: bool = True

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, schedule: Callable) -> PlateauRule:
    """The rule of ``config.schedule`` over ``schedule`` (:func:`create_schedule`)."""
    return cls(
      schedule,
      patience=config.schedule.plateau_patience,
      factor=config.schedule.decay_factor,
      max_drops=config.schedule.max_drops,
      min_delta=config.schedule.min_delta,
      enabled=config.schedule.name == "plateau",
    )

  def after_eval(
    self, plateau: PlateauState, eval_error: float, *, step: int, epoch: float
  ) -> tuple[PlateauState, dict | None]:
    """(the record after the evaluation at ``step``, the :func:`plateau_drop` record of its cut or None)."""
    if not self.enabled:
      return plateau, None
    after = _update_plateau_jitted(
      plateau,
      eval_error,
      patience=self.patience,
      factor=self.factor,
      max_drops=self.max_drops,
      min_delta=self.min_delta,
    )
    drop = plateau_drop(plateau, after, schedule=self.schedule, step=step, epoch=epoch, eval_error=eval_error)
    return after, drop
