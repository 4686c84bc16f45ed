"""``python tests/mock_data_main.py --workdir=... [--config=...]``: alexnet_jax.main on mock data.

The CLI tests run this instead of ``python -m alexnet_jax.main`` so that no real dataset is needed;
everything else (flags, config loading, errors, exit status) is main's own.
"""

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repo root
sys.path.insert(1, os.path.dirname(os.path.abspath(__file__)))

from alexnet_jax.train import preemption  # pylint: disable=g-import-not-at-top

preemption.exit_on_signals()  # as main does, before the slow imports

import mock_inputs  # pylint: disable=g-import-not-at-top
from absl import app  # pylint: disable=g-import-not-at-top

from alexnet_jax import main  # pylint: disable=g-import-not-at-top
from alexnet_jax.config import flag_errors  # pylint: disable=g-import-not-at-top

if __name__ == "__main__":
  with mock_inputs.mock_data():
    app.run(main.main, flags_parser=flag_errors.parse_flags)
