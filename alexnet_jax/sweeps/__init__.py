"""Ablation sweeps: sweeps as data (``spec``, re-exported here), the runner and the report."""

from alexnet_jax.sweeps.spec import Claim, Run, Sweep, axis, concat, override_flags, product, seeds, zip_axes

__all__ = ["Claim", "Run", "Sweep", "axis", "concat", "override_flags", "product", "seeds", "zip_axes"]
