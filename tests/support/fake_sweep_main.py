"""A stand-in for alexnet_jax.main in the sweep tests: writes summary.json with an error computed from the
overrides; crashes on its first attempt when FAKE_MODE=crash_first (to test resume), or always for dropout
0.75 when FAKE_MODE=fail_075."""

import json
import os
import sys

args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
workdir = args["workdir"]
os.makedirs(workdir, exist_ok=True)
attempts_file = os.path.join(workdir, "attempts")
attempts = int(open(attempts_file).read()) + 1 if os.path.exists(attempts_file) else 1
open(attempts_file, "w").write(str(attempts))
mode = os.environ.get("FAKE_MODE", "")
dropout = float(args.get("config.model.dropout_rate", 0.5))
if mode == "crash_first" and attempts == 1:
  sys.exit(3)
if mode == "fail_075" and dropout == 0.75:
  sys.exit(4)
seed = int(args.get("config.seed", 0))
lrn = args.get("config.model.lrn", "True") == "True"
error = 0.10 + 0.02 * dropout - (0.01 if lrn else 0.0) + 0.001 * seed
summary = {
  "step": 10,
  "eval_top1_error": error,
  "eval_top5_error": error / 10,
  "eval_loss": 3 * error,
  "train_loss": 2 * error,
  "wall_seconds": 60.0,
}
json.dump(summary, open(os.path.join(workdir, "summary.json"), "w"))
