"""Checks an experiment config before anything is built, so a bad value fails in one clear line.

Each rule is written once, where it belongs, and run from here:

* :data:`FIELD_RULES` -- one field, one predicate (``rules.py``), the words that say what is allowed;
* the model's options' rules (``model/options.py``, the rules ``AlexNet`` itself checks), reported as
  ``config.model.<option>``;
* :data:`CROSS_CHECKS` -- constraints between fields (and the device count); the mesh layout rules
  come from ``parallel/sharding.py``.

:func:`validate` runs them all and raises one :class:`ConfigError` that lists every problem.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import ml_collections

from alexnet_jax.config import rules
from alexnet_jax.config.rules import ConfigError, boolean, integer, number, one_of, string
from alexnet_jax.data import options as data_options
from alexnet_jax.model import alexnet
from alexnet_jax.model import options as model_options
from alexnet_jax.parallel import sharding
from alexnet_jax.train import optimizers, profiling

# The step counter is an int32 on the device: no run may plan more steps.
MAX_STEPS = 2**31 - 1
# Seeds: JAX keys (without x64) and the input pipeline keep a seed's low 32 bits, so a larger seed
# would silently repeat a smaller one (2**32 trains exactly like 0).
SEED_LIMIT = 2**32


def _minus_one_or_at_least_one(field: str, meaning: str) -> rules.Rule:
  return rules.Rule(field, lambda v: rules.is_int(v) and (v == -1 or v >= 1), f"-1 ({meaning}) or an integer >= 1")


CONFIG_RULES: tuple[rules.Rule, ...] = (
  rules.Rule(
    "seed",
    lambda v: rules.is_int(v) and 0 <= v < SEED_LIMIT,
    "an integer in [0, 2**32): JAX keys and the input pipeline keep its low 32 bits, larger seeds repeat smaller ones",
  ),
  one_of("dataset", data_options.DATASETS),
  string("data_dir", empty_ok=True),
  string("manual_dir", empty_ok=True),
  string("train_split", empty_ok=False),
  string("eval_split", empty_ok=False),
  one_of("input.eval_crops", data_options.EVAL_CROPS),
  one_of("input.normalization", data_options.NORMALIZATIONS),
  integer("input.resize_size", 1),
  one_of("input.resize", data_options.RESIZES),
  integer("input.crop_size", 1),
  boolean("input.random_crop"),
  boolean("input.random_flip"),
  number("input.pca_noise_std", 0.0),
  number("input.train_scale", 0.0, low_open=True),
  one_of("input.pca_noise_form", data_options.PCA_NOISE_FORMS),
  one_of("input.mean", data_options.MEANS),
  one_of("input.mean_crop", data_options.MEAN_CROPS),
  boolean("input.use_store"),
  integer("input.read_threads", 0),
  _minus_one_or_at_least_one("eval_max_examples", "all"),
  one_of("optimizer.name", optimizers.OPTIMIZERS),
  number("optimizer.learning_rate", 0.0, low_open=True),
  number("optimizer.momentum", 0.0, 1.0),
  number("optimizer.weight_decay", 0.0),
  boolean("optimizer.decay_biases"),
  number("optimizer.bias_lr_multiplier", 0.0, low_open=True),
  one_of("schedule.name", optimizers.SCHEDULES),
  integer("schedule.warmup_steps", 0),
  number("schedule.decay_factor", 0.0, 1.0, low_open=True, high_open=False),
  integer("schedule.plateau_patience", 1),
  integer("schedule.max_drops", 0),
  integer("schedule.step_every", 0),
  number("schedule.min_delta", 0.0, 1.0, high_open=False),
  number("label_smoothing", 0.0, 1.0),
  number("ema_decay", 0.0, 1.0),
  integer("batch_size", 1),
  number("num_epochs", 0.0),
  rules.Rule(
    "num_train_steps",
    lambda v: rules.is_int(v) and (v == -1 or 1 <= v <= MAX_STEPS),
    f"-1 (use num_epochs) or an integer in [1, {MAX_STEPS}] (the step counter is an int32)",
  ),
  integer("log_every_steps", 1),
  _minus_one_or_at_least_one("eval_every_steps", "once per epoch"),
  integer("checkpoint_every_steps", 1),
  integer("keep_checkpoints", 1),
  rules.Rule("profile_steps", profiling.is_window, '"" (off) or "A:B" with integers 1 <= A < B (steps A to B-1)'),
  integer("tower_parallel", 1),
  one_of("parallelism", sharding.PARALLELISMS),
)
# Every field's rule: the config's own, then the model's options (the rules AlexNet itself checks,
# not a copy) under config.model.
FIELD_RULES: tuple[rules.Rule, ...] = CONFIG_RULES + tuple(
  dataclasses.replace(rule, field=f"model.{rule.field}") for rule in model_options.RULES
)


def _training_length(config, device_count):
  if config.num_train_steps == -1 and not config.num_epochs > 0:
    return f"config.num_epochs={config.num_epochs!r} must be > 0 when config.num_train_steps is -1"
  return None


def _mesh_layout(config, device_count):
  """The mesh's own rules (``parallel/sharding.py``): towers per device, batch shares."""
  problems = [
    sharding.tower_parallel_problem(config.tower_parallel, device_count),
    sharding.towers_problem(config.tower_parallel, config.model.towers),
  ]
  if not any(problems):
    problems.append(sharding.batch_problem(config.batch_size, device_count, config.tower_parallel, config.parallelism))
  return "; ".join(p for p in problems if p) or None


def _crop_fits_resize(config, device_count):
  if config.input.crop_size > config.input.resize_size:
    return (
      f"config.input.crop_size={config.input.crop_size} must be <= config.input.resize_size={config.input.resize_size}"
    )
  return None


def _model_sees_crops(config, device_count):
  if config.model.input_size != config.input.crop_size:
    return (
      f"config.model.input_size={config.model.input_size} must equal config.input.crop_size={config.input.crop_size}"
    )
  try:
    alexnet.feature_map_sizes(config.model.input_size, config.model.pool_window, config.model.pool_stride)
  except ValueError as error:
    return f"config.model.input_size: {error}"
  return None


def _input_channels(config, device_count):
  """The model reads RGB (grey images replicated) or, for a grey dataset, its one channel."""
  channels, dataset_channels = config.model.in_channels, data_options.image_channels(config.dataset)
  if channels not in {3, dataset_channels}:
    return (
      f"config.model.in_channels={channels} must be 3 (RGB; grey images are replicated) or 1 (grey"
      f" datasets only; {config.dataset}'s images have {dataset_channels} channels)"
    )
  if channels == 1 and config.input.pca_noise_std > 0:
    return (
      f"config.input.pca_noise_std={config.input.pca_noise_std} must be 0 with config.model.in_channels=1"
      " (colour noise needs RGB)"
    )
  return None


def _boundaries_are_fractions(config, device_count):
  boundaries = tuple(config.schedule.boundaries)
  if not all(rules.is_number(b) and 0 < b < 1 for b in boundaries) or list(boundaries) != sorted(boundaries):
    return (
      f"config.schedule.boundaries={boundaries!r} must be increasing fractions of training in (0, 1), e.g. (0.5, 0.75)"
    )
  return None


def _step_schedule_has_a_period(config, device_count):
  if config.schedule.name == "step" and config.schedule.step_every < 1:
    return (
      f"config.schedule.step_every={config.schedule.step_every} must be >= 1 with config.schedule.name='step'"
      " (the rate is multiplied by config.schedule.decay_factor every step_every steps)"
    )
  return None


CROSS_CHECKS: tuple[Callable[[ml_collections.ConfigDict, int], str | None], ...] = (
  _training_length,
  _mesh_layout,
  _crop_fits_resize,
  _model_sees_crops,
  _input_channels,
  _boundaries_are_fractions,
  _step_schedule_has_a_period,
)


def validate(config: ml_collections.ConfigDict, *, device_count: int | None = None) -> None:
  """Raises :class:`ConfigError` listing every rule ``config`` breaks; returns None if it is fine."""
  device_count = jax.device_count() if device_count is None else device_count
  errors = []
  for rule in FIELD_RULES:
    try:
      value = _lookup(config, rule.field)
    except KeyError:
      errors.append(f"config.{rule.field} is missing")
      continue
    if not rule.check(value):
      errors.append(f"config.{rule.field}={value!r} is not allowed: expected {rule.expected}")
  if not errors:  # cross-field checks assume every field is present and well typed
    errors = [message for check in CROSS_CHECKS if (message := check(config, device_count))]
  if errors:
    raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


def _lookup(config, dotted: str):
  value = config
  for key in dotted.split("."):
    if key not in value:
      raise KeyError(dotted)
    value = value[key]
  return value
