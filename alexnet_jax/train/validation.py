"""Checks a run's config before anything is built, so a bad value fails in one clear line.

Each rule is written once, where it belongs, and run from here:

* every field's rule, from the option table of the package that implements it (``run_config.SECTIONS``:
  the model's are the rules ``AlexNet`` itself checks, reported as ``config.model.<option>``);
* the checks between fields (and the device count): the data's own (``data/input_options.py``), the
  mesh layout rules of ``parallel/sharding.py``, and the model's and training's below.

:func:`validate` runs them all (``rules.check_config``) and raises one :class:`ConfigError` that lists
every problem. It sits in ``train/``, above every package whose fields it checks: the loop calls it.
"""

from __future__ import annotations

import re

import jax
import ml_collections

from alexnet_jax import rules
from alexnet_jax.data import input_options
from alexnet_jax.data import options as data_options
from alexnet_jax.model import alexnet
from alexnet_jax.parallel import sharding
from alexnet_jax.rules import ConfigError
from alexnet_jax.train import run_config
from alexnet_jax.train.options import MAX_STEPS

__all__ = ["FIELD_RULES", "MAX_STEPS", "ConfigError", "validate"]

FIELD_RULES: tuple[rules.Rule, ...] = run_config.field_rules()


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


def _model_sees_crops(config, device_count):
  if config.model.input_size != config.input.crop_size:
    return (
      f"config.model.input_size={config.model.input_size} must equal config.input.crop_size={config.input.crop_size}"
    )
  try:
    alexnet.feature_map_sizes(
      config.model.input_size, config.model.pool_window, config.model.pool_stride, config.model.conv1_padding
    )
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


def _trainable_names_a_layer(config, device_count):
  """A pattern that freezes every layer trains nothing: a typo, said before a run starts."""
  pattern = config.trainable
  if pattern and not any(re.fullmatch(pattern, name) for name in alexnet.LAYER_NAMES):
    return (
      f"config.trainable={pattern!r} matches no layer: the pattern must match a whole layer name of"
      f" {', '.join(alexnet.LAYER_NAMES)} (e.g. 'fc6|fc7|fc8')"
    )
  return None


CROSS_CHECKS: tuple[rules.CrossCheck, ...] = (
  _training_length,
  _mesh_layout,
  *input_options.CROSS_CHECKS,
  _model_sees_crops,
  _input_channels,
  _boundaries_are_fractions,
  _step_schedule_has_a_period,
  _trainable_names_a_layer,
)


def validate(config: ml_collections.ConfigDict, *, device_count: int | None = None) -> None:
  """Raises :class:`ConfigError` listing every rule ``config`` breaks; returns None if it is fine."""
  device_count = jax.device_count() if device_count is None else device_count
  rules.check_config(config, FIELD_RULES, CROSS_CHECKS, device_count)
