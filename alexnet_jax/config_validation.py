"""Checks an experiment config before anything is built, so a bad value fails in one clear line.

Two tables drive it (extend them, don't add branches):

* :data:`FIELD_RULES` -- one field, one predicate, and the words that say what is allowed.
* :data:`CROSS_CHECKS` -- functions of the whole config (and the device count) for constraints
  between fields; each returns an error message or ``None``.

:func:`validate` runs both and raises one :class:`ConfigError` that lists every problem.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Callable

import jax
import ml_collections

from alexnet_jax import layers, models, optimizers, sharding

# The datasets alexnet_jax.datasets knows (kept here so validation imports without TensorFlow;
# tests check the two lists agree).
DATASETS = ("fashion_mnist", "cifar10", "imagenet2012")
NORMALIZATIONS = ("standardize", "subtract_mean")
DTYPES = ("float32", "bfloat16", "float16")
EVAL_CROPS = ("center", "ten_crop")


class ConfigError(ValueError):
  """A config value the user can fix; the message names the field and what is allowed."""


@dataclasses.dataclass(frozen=True)
class Rule:
  """``config.<field>`` must satisfy ``check``; ``expected`` says what that means."""

  field: str
  check: Callable[[Any], bool]
  expected: str


def one_of(field: str, allowed) -> Rule:
  return Rule(field, lambda value: value in allowed, f"one of {tuple(allowed)}")


def integer(field: str, minimum: int) -> Rule:
  return Rule(field, lambda value: _is_int(value) and value >= minimum, f"an integer >= {minimum}")


def number(field: str, low: float, high: float = float("inf"), *, low_open: bool = False,
           high_open: bool = True) -> Rule:
  """A real number in the interval from ``low`` to ``high`` (open or closed at either end)."""

  def check(value):
    if not _is_number(value):
      return False
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    return above and below

  interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
  return Rule(field, check, f"a number in {interval}")


def boolean(field: str) -> Rule:
  return Rule(field, lambda value: isinstance(value, bool), "True or False")


def string(field: str, *, empty_ok: bool) -> Rule:
  expected = "a string (\"\" for the default)" if empty_ok else "a non-empty string"
  return Rule(field, lambda value: isinstance(value, str) and (empty_ok or bool(value)), expected)


FIELD_RULES: tuple[Rule, ...] = (
    integer("seed", 0),
    one_of("dataset", DATASETS),
    string("data_dir", empty_ok=True),
    string("manual_dir", empty_ok=True),
    string("train_split", empty_ok=False),
    string("eval_split", empty_ok=False),
    one_of("input.eval_crops", EVAL_CROPS),
    one_of("input.normalization", NORMALIZATIONS),
    integer("input.resize_size", 1),
    integer("input.crop_size", 1),
    boolean("input.random_crop"),
    boolean("input.random_flip"),
    number("input.pca_noise_std", 0.0),
    integer("input.shuffle_buffer", 1),
    Rule("eval_max_examples", lambda v: _is_int(v) and (v == -1 or v >= 1), "-1 (all) or an integer >= 1"),
    integer("model.num_classes", 1),
    integer("model.input_size", 1),
    boolean("model.lrn"),
    boolean("model.lrn_per_tower"),
    one_of("model.towers", (1, 2)),
    number("model.width", 0.0, low_open=True),
    one_of("model.lrn_region", layers.LRN_REGIONS),
    one_of("model.lrn_position", models.LRN_POSITIONS),
    Rule("model.lrn_size", lambda v: _is_int(v) and v >= 1 and v % 2 == 1,
         "a positive odd integer (the window is centred on its channel)"),
    number("model.lrn_k", 0.0, low_open=True),
    number("model.lrn_alpha", 0.0),
    number("model.lrn_beta", 0.0),
    number("model.dropout_rate", 0.0, 1.0),
    integer("model.pool_window", 1),
    integer("model.pool_stride", 1),
    one_of("model.init", models.INIT_SCHEMES),
    one_of("model.dtype", DTYPES),
    one_of("optimizer.name", optimizers.OPTIMIZERS),
    number("optimizer.learning_rate", 0.0, low_open=True),
    number("optimizer.momentum", 0.0, 1.0),
    number("optimizer.weight_decay", 0.0),
    one_of("schedule.name", optimizers.SCHEDULES),
    integer("schedule.warmup_steps", 0),
    number("schedule.decay_factor", 0.0, 1.0, low_open=True, high_open=False),
    integer("schedule.plateau_patience", 1),
    integer("schedule.max_drops", 0),
    integer("batch_size", 1),
    number("num_epochs", 0.0),
    Rule("num_train_steps", lambda v: _is_int(v) and (v == -1 or v >= 1), "-1 (use num_epochs) or an integer >= 1"),
    integer("log_every_steps", 1),
    Rule("eval_every_steps", lambda v: _is_int(v) and (v == -1 or v >= 1), "-1 (once per epoch) or an integer >= 1"),
    integer("checkpoint_every_steps", 1),
    integer("keep_checkpoints", 1),
    integer("tower_parallel", 1),
    one_of("parallelism", sharding.PARALLELISMS),
)


def _training_length(config, device_count):
  if config.num_train_steps == -1 and not config.num_epochs > 0:
    return f"config.num_epochs={config.num_epochs!r} must be > 0 when config.num_train_steps is -1"
  return None


def _batch_divides_data_parallel(config, device_count):
  data_parallel = max(device_count // config.tower_parallel, 1)
  if config.batch_size % data_parallel:
    return (f"config.batch_size={config.batch_size} must be divisible by the data-parallel size "
            f"({data_parallel} = {device_count} devices / tower_parallel {config.tower_parallel}) "
            "so every device gets the same share")
  return None


def _towers_divide_devices(config, device_count):
  if device_count % config.tower_parallel:
    return (f"config.tower_parallel={config.tower_parallel} must divide the number of devices "
            f"({device_count})")
  return None


def _tower_parallel_matches_towers(config, device_count):
  if config.tower_parallel > 1 and config.tower_parallel != config.model.towers:
    return (f"config.tower_parallel={config.tower_parallel} must be 1 (data parallelism only) or "
            f"equal config.model.towers={config.model.towers} (one tower per device)")
  return None


def _crop_fits_resize(config, device_count):
  if config.input.crop_size > config.input.resize_size:
    return (f"config.input.crop_size={config.input.crop_size} must be <= "
            f"config.input.resize_size={config.input.resize_size}")
  return None


def _model_sees_crops(config, device_count):
  if config.model.input_size != config.input.crop_size:
    return (f"config.model.input_size={config.model.input_size} must equal "
            f"config.input.crop_size={config.input.crop_size}")
  try:
    models.feature_map_sizes(config.model.input_size, config.model.pool_window, config.model.pool_stride)
  except ValueError as error:
    return f"config.model.input_size: {error}"
  return None


def _boundaries_are_fractions(config, device_count):
  boundaries = tuple(config.schedule.boundaries)
  if not all(_is_number(b) and 0 < b < 1 for b in boundaries) or list(boundaries) != sorted(boundaries):
    return (f"config.schedule.boundaries={boundaries!r} must be increasing fractions of training "
            "in (0, 1), e.g. (0.5, 0.75)")
  return None


CROSS_CHECKS: tuple[Callable[[ml_collections.ConfigDict, int], str | None], ...] = (
    _training_length,
    _batch_divides_data_parallel,
    _towers_divide_devices,
    _tower_parallel_matches_towers,
    _crop_fits_resize,
    _model_sees_crops,
    _boundaries_are_fractions,
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


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)
