"""alexnet_jax: AlexNet (Krizhevsky, Sutskever & Hinton, 2012) reproduced in JAX / Flax NNX."""

# First, before anything creates a JAX backend: the package's XLA:CPU speed flags.
from alexnet_jax import xla_flags as _xla_flags

_xla_flags.apply()
