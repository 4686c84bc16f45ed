"""What a run recorded before a config field existed trained with: the values its ``config.json`` lacks.

A trained run is read back from its own ``WORKDIR/config.json`` (``inference/trained_run.py``); a field
added to the code after the run was recorded is missing there and takes the value that reproduces
what the run did: its option's ``before`` (``option_tables.Option``), which is its default unless the
option says otherwise (biases were decayed before ``optimizer.decay_biases``). Fields that every
recorded config holds (those of the first config a run wrote, 2026-11-27 8e1fe69) have no ``since``; a
field added later needs one, else an older run fails validation with ``config.<field> is missing``.
Pure Python.
"""

from __future__ import annotations

from typing import Any

from alexnet_jax.train import run_config


def values_before() -> dict[str, Any]:
  """Dotted field -> the value a run recorded before the field existed trained with."""
  return {
    prefix + option.name: option.value_before
    for prefix, options in run_config.SECTIONS
    for option in options
    if option.since
  }
