"""How fast a command on a trained run starts: ``predict`` of one image against the bare imports.

Runs, alternately and ``--repeats`` times, ``python -c "import jax, flax, orbax.checkpoint"`` (the
floor every command pays) and ``python -m alexnet_jax.predict --workdir=W IMAGE`` (after one
unmeasured ``predict`` that fills the persistent compilation cache), each in a fresh process, and
prints one JSON line: the median wall seconds of each, their ratio, and the median peak RSS (MB) of
each process (``wait4``'s ``ru_maxrss``).

  python -m alexnet_jax.yardsticks.cold_start --workdir=W --image=shoe.png --repeats=5
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

IMPORTS = "import jax, flax, orbax.checkpoint"


def measure(command: list[str]) -> tuple[float, float]:
  """(wall seconds, peak RSS in MB) of one run of ``command``; fails loudly if it fails."""
  start = time.perf_counter()
  process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  _, status, usage = os.wait4(process.pid, 0)
  wall = time.perf_counter() - start
  if os.waitstatus_to_exitcode(status) != 0:
    raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
  return wall, usage.ru_maxrss / 1024


def main(argv):
  del argv
  imports = [sys.executable, "-c", IMPORTS]
  predict = [sys.executable, "-m", "alexnet_jax.predict", f"--workdir={flags.FLAGS.workdir}", flags.FLAGS.image]
  measure(predict)  # fills the compilation cache: what a user's second call finds
  runs = {"imports": [], "predict": []}
  for _ in range(flags.FLAGS.repeats):
    runs["imports"].append(measure(imports))
    runs["predict"].append(measure(predict))
  result = {
    name: {
      "wall_seconds": round(statistics.median(w for w, _ in pairs), 3),
      "peak_rss_mb": round(statistics.median(r for _, r in pairs), 1),
    }
    for name, pairs in runs.items()
  }
  result["wall_ratio"] = round(result["predict"]["wall_seconds"] / result["imports"]["wall_seconds"], 2)
  result["repeats"] = flags.FLAGS.repeats
  print(json.dumps(result))


if __name__ == "__main__":
  # Defined here, not at import: other commands define --workdir too (absl allows one per process).
  flags.DEFINE_string("workdir", None, "A trained run's work directory.", required=True)
  flags.DEFINE_string("image", None, "An image file to predict.", required=True)
  flags.DEFINE_integer("repeats", 5, "Alternating pairs of measured runs.", lower_bound=1)
  app.run(main)
