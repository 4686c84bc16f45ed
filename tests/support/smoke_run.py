"""A ``:smoke`` Fashion-MNIST run trained on mock data through the real command line, for the tests
of the commands that read a trained run (evaluate, predict, figures, export)."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAIN_ON_MOCK_DATA = os.path.join(REPO, "tests", "support", "mock_data_main.py")


def train(folder) -> str:
  """Trains the run into ``folder/run`` (``tests/support/mock_data_main.py``) and returns its path."""
  path = os.path.join(str(folder), "run")
  result = subprocess.run(
    [sys.executable, MAIN_ON_MOCK_DATA, f"--workdir={path}", "--config=experiments/fashion_mnist.py:smoke"],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return path
