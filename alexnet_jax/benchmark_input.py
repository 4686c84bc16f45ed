"""``python -m alexnet_jax.benchmark_input``: the input pipeline alone (``yardsticks/input_benchmark.py``)."""

from absl import app

from alexnet_jax import flag_errors
from alexnet_jax.yardsticks.input_benchmark import main

if __name__ == "__main__":
  app.run(main, flags_parser=flag_errors.parse_flags)
