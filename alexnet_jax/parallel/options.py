"""The parallelism fields of a run's config, declared once: how the mesh splits the devices
(``tower_parallel``) and what the tower axis splits (``parallelism``). ``sharding.py`` implements
them and checks them against the device count. Pure Python.
"""

from __future__ import annotations

from alexnet_jax import rules
from alexnet_jax.option_tables import Option

PARALLELISMS = ("towers", "weird_trick")

OPTIONS = (
  Option(
    rules.integer("tower_parallel", 1),
    1,
    "devices on the mesh's `tower` axis: 1 = pure data parallelism, 2 = the paper's two towers on two devices"
    " (or 2k accelerators)",
  ),
  Option(
    rules.one_of("parallelism", PARALLELISMS),
    "towers",
    '`"towers"` (2012: every layer split) or `"weird_trick"` (2014: the FC layers only)',
  ),
)
