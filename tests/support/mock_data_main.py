"""``python tests/support/mock_data_main.py [COMMAND] --workdir=... ...``: an alexnet_jax command on mock data.

COMMAND names a command module of the package (``evaluate``, ``predict``, ``figures``, ``export``,
...); without one it is ``main`` (training). The CLI tests run this instead of
``python -m alexnet_jax.COMMAND`` so that no real dataset is needed; everything else (flags, config
loading, errors, exit status) is the command's own.
"""

import importlib
import os
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[0] = os.path.dirname(TESTS)  # the repo root
sys.path.insert(1, TESTS)

from alexnet_jax.train import preemption  # pylint: disable=g-import-not-at-top

preemption.exit_on_signals()  # as main does, before the slow imports

from absl import app  # pylint: disable=g-import-not-at-top

from alexnet_jax import flag_errors  # pylint: disable=g-import-not-at-top
from support import mock_inputs  # pylint: disable=g-import-not-at-top

if __name__ == "__main__":
  name = sys.argv.pop(1) if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "main"
  command = importlib.import_module(f"alexnet_jax.{name}")
  with mock_inputs.mock_data():
    if name == "main":
      app.run(command.main, flags_parser=flag_errors.parse_flags)
    else:
      from alexnet_jax.inference import cli  # pylint: disable=g-import-not-at-top

      cli.run(command.main, command.define_flags)
