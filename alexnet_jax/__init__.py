"""alexnet_jax: AlexNet (Krizhevsky, Sutskever & Hinton, 2012) reproduced in JAX / Flax NNX."""
