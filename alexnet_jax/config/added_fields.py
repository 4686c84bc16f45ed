"""What a run recorded before a config field existed trained with: the values its ``config.json`` lacks.

A trained run is read back from its own ``WORKDIR/config.json`` (``inference/trained_run.py``); a field
added to the code after the run was recorded is missing there and takes the value that reproduces
what the run did. For a model option that is its declared default (``model/options.py``: an option
is added with the old network as its default, and its ``since``); for any other field it is the
behaviour before the field existed, in :data:`ADDED_FIELDS` -- not always today's default (biases were
decayed before ``optimizer.decay_biases``). Fields that every recorded config holds (those of the
first config a run wrote, 2026-11-27 8e1fe69) need no entry; a field added since needs one here, or
in its option's ``since``, else an older run fails validation with ``config.<field> is missing``.
Pure Python.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from alexnet_jax.model import options as model_options


@dataclasses.dataclass(frozen=True)
class AddedField:
  """``field`` (dotted, under ``config``) appeared at ``since`` ("DATE COMMIT"); runs before it did ``before``."""

  field: str
  before: Any
  since: str


ADDED_FIELDS = (
  AddedField("input.normalization", "standardize", "2026-11-27 d5ec7c1"),
  AddedField("input.pca_noise_form", "fb_resnet", "2026-12-01 3ea67c3"),  # alpha_i * eigenvalue_i
  AddedField("input.mean", "channel", "2026-12-01 3ea67c3"),  # no store, so no mean image
  AddedField("input.use_store", False, "2026-12-01 3ea67c3"),  # TFDS's own records
  AddedField("optimizer.decay_biases", True, "2026-12-01 3ea67c3"),
  AddedField("profile_steps", "", "2026-12-01 07585c7"),
  AddedField("label_smoothing", 0.0, "2026-12-01 b4b9277"),
  AddedField("ema_decay", 0.0, "2026-12-01 b4b9277"),
  AddedField("input.resize", "shorter_side", "2026-12-06 bc63217"),
  AddedField("input.train_scale", 1.0, "2026-12-06 55b4487"),
  AddedField("optimizer.bias_lr_multiplier", 1.0, "2026-12-06 55b4487"),
  AddedField("schedule.step_every", 0, "2026-12-06 55b4487"),
  AddedField("schedule.min_delta", 0.0, "2026-12-06 55b4487"),  # any lower error was an improvement
  AddedField("input.mean_crop", "at_view", "2026-12-06 44e54bf"),  # the mean image cut with each view
  AddedField("input.read_threads", 2, "2026-12-07 c34f63f"),  # loader.READ_THREADS on any host
)


def values_before() -> dict[str, Any]:
  """Dotted field -> the value a run recorded before the field existed trained with."""
  added = {f"model.{option.name}": option.default for option in model_options.OPTIONS if option.since}
  return added | {entry.field: entry.before for entry in ADDED_FIELDS}
