"""A run's config, section by section: each section is the option table of the package that
implements it, so every field is declared once (``option_tables.Option``).

:data:`SECTIONS` lists them in the configs' order; the validator checks their rules, the configs start
from :func:`default_config`, docs/configuration.md's tables and the values of runs recorded before a
field existed (``config/added_fields.py``) come from them.
"""

from __future__ import annotations

import ml_collections

from alexnet_jax import option_tables
from alexnet_jax.data import input_options
from alexnet_jax.model import options as model_options
from alexnet_jax.parallel import options as parallel_options
from alexnet_jax.train import options as train_options

# (section prefix, options): "" for the config's top-level fields, "NAME." for config.NAME.
SECTIONS: tuple[tuple[str, tuple[option_tables.Option, ...]], ...] = (
  ("", input_options.DATA_OPTIONS),
  ("input.", input_options.INPUT_OPTIONS),
  ("model.", model_options.OPTIONS),
  ("optimizer.", train_options.OPTIMIZER_OPTIONS),
  ("schedule.", train_options.SCHEDULE_OPTIONS),
  ("", train_options.RUN_OPTIONS),
  ("", parallel_options.OPTIONS),
)


def field_rules() -> tuple:
  """Every field's rule, named by its dotted field (``input.crop_size``)."""
  return tuple(rule for prefix, options in SECTIONS for rule in option_tables.field_rules(options, prefix))


def default_config() -> ml_collections.ConfigDict:
  """Every field at the paper's value; ``model.input_size`` follows ``input.crop_size`` (a reference)."""
  config = ml_collections.ConfigDict()
  for prefix, options in SECTIONS:
    if prefix:
      config[prefix.rstrip(".")] = option_tables.section_config(options)
    else:
      config.update(option_tables.defaults(options))
  config.model.input_size = config.input.get_ref("crop_size")
  return config
