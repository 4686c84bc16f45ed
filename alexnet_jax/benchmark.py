"""``python -m alexnet_jax.benchmark``: the train step against PyTorch (``yardsticks/benchmark.py``)."""

from alexnet_jax.yardsticks.benchmark import main

if __name__ == "__main__":
  main()
