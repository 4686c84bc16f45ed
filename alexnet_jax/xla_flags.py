"""XLA:CPU options this package sets for speed, before JAX creates its backends.

Imported first by ``alexnet_jax/__init__.py``. XLA reads ``XLA_FLAGS`` once, when the first
backend is created, so this must run before any JAX computation; importing ``alexnet_jax`` before
using JAX is enough. Only CPU-backend flags are set, each only when the user's ``XLA_FLAGS`` does
not already name it (the user always wins), and only for jaxlib versions where the flag was checked
to exist: XLA aborts on unknown flags, so a blind default could break a future jaxlib.

Measured on a 2-core x86 host (jaxlib 0.10.2, AlexNet train step, 227x227, fp32); see
``benchmarks/README.md``:

* ``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution``: this jaxlib sends each
  convolution to YNNPACK, 2-3x slower here than XLA's own (Eigen) convolutions for AlexNet's
  shapes, forward and backward; the minus keeps YNNPACK for everything else (matmuls).
"""

from __future__ import annotations

import importlib.metadata
import os

# flag name -> (value, jaxlib versions (major, minor) where it exists and was measured)
CPU_FLAGS = {
  "xla_cpu_experimental_ynn_fusion_type": ("-individual_convolution", ((0, 10),)),
}


def _jaxlib_version() -> tuple[int, int] | None:
  try:
    major, minor = importlib.metadata.version("jaxlib").split(".")[:2]
    return int(major), int(minor)
  except (importlib.metadata.PackageNotFoundError, ValueError):
    return None


def cpu_flags_to_add(current: str, jaxlib_version: tuple[int, int] | None) -> list[str]:
  """The ``--flag=value`` strings to append to ``current`` (the user's ``XLA_FLAGS``)."""
  return [
    f"--{name}={value}"
    for name, (value, versions) in CPU_FLAGS.items()
    if jaxlib_version in versions and f"--{name}" not in current
  ]


def apply() -> None:
  """Appends this package's CPU flags to ``XLA_FLAGS`` where the user has not set them."""
  current = os.environ.get("XLA_FLAGS", "")
  extra = cpu_flags_to_add(current, _jaxlib_version())
  if extra:
    os.environ["XLA_FLAGS"] = " ".join([current, *extra]).strip()
