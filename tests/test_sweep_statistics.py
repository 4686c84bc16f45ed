"""The sweep report's statistics: intervals against textbook values, paired differences, verdicts,
convergence and over-fitting numbers, and the claims section of a report on fake runs."""

import json
import math
import os

import pytest

from alexnet_jax import sweeps
from alexnet_jax.sweeps import claims, report, runner, statistics

# Student's t quantiles t_{0.975, df} from printed tables.
T_975 = {1: 12.706, 2: 4.303, 4: 2.776}


def test_mean_interval_is_the_student_t_interval():
  values = [1.0, 2.0, 4.0]  # mean 7/3, sample std 1.5275
  interval = statistics.mean_interval(values)
  half = T_975[2] * 1.527525 / math.sqrt(3)
  assert interval.n == 3 and math.isclose(interval.mean, 7 / 3)
  assert math.isclose(interval.half_width, half, rel_tol=1e-3)
  one = statistics.mean_interval([0.5])
  assert one.n == 1 and one.low == -math.inf and one.format(100, 1) == "50.0"
  assert statistics.mean_interval([]).format() == "-"


def test_paired_difference_removes_the_seed_effect():
  # Each seed shifts both cells alike: unpaired intervals overlap, the paired one is tight.
  baseline = {0: 0.20, 1: 0.30, 2: 0.40, 3: 0.25, 4: 0.35}
  treatment = {s: v - 0.01 + 0.001 * (s % 2) for s, v in baseline.items()}
  paired = statistics.paired_difference(treatment, baseline)
  assert paired.n == 5 and paired.high < 0
  assert (
    statistics.mean_interval(list(treatment.values())).high > statistics.mean_interval(list(baseline.values())).mean
  )
  assert statistics.verdict(paired, expected_sign=-1) == "agrees"
  assert statistics.verdict(paired, expected_sign=+1) == "disagrees"
  noisy = statistics.paired_difference({0: 0.1, 1: 0.3, 2: 0.2}, {0: 0.2, 1: 0.2, 2: 0.2})
  assert noisy.low < 0 < noisy.high and statistics.verdict(noisy, -1) == "not resolved"
  # Only seeds both cells have count.
  assert statistics.paired_difference({0: 1.0, 7: 5.0}, {0: 0.5, 1: 9.0}).n == 1


def test_steps_to_reach_and_overfits():
  curve = [(10, 2.0), (20, 0.9), (30, 0.4), (40, 0.5)]
  assert statistics.steps_to_reach(curve, 0.5) == 30
  assert statistics.steps_to_reach(curve, 0.1) is None
  assert statistics.overfits([1.0, 0.6, 0.7], final_train_loss=0.01)
  assert not statistics.overfits([1.0, 0.6, 0.5], final_train_loss=0.01)  # test loss still falling
  assert not statistics.overfits([1.0, 0.6, 0.7], final_train_loss=0.2)  # not fitted yet


# Writes a summary whose error depends on LRN (-1 point), dropout (+2 points per unit) and the seed,
# and an eval history whose test loss turns upwards without dropout.
FAKE_MAIN = """
import json, os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
os.makedirs(args["workdir"], exist_ok=True)
seed, dropout = int(args.get("config.seed", 0)), float(args.get("config.model.dropout_rate", 0.5))
lrn = args.get("config.model.lrn", "True") == "True"
error = 0.10 + 0.02 * dropout - (0.01 if lrn else 0.0) + 0.003 * seed + 0.0004 * (seed % 2)
losses = [1.0, 0.5, 0.6] if dropout == 0 else [1.0, 0.6, 0.5]
summary = {"step": 30, "eval_top1_error": error, "eval_top5_error": error / 10, "eval_loss": losses[-1],
           "train_loss": 0.01 if dropout == 0 else 0.2, "wall_seconds": 6.0,
           "eval_history": [{"step": 10 * (i + 1), "loss": l} for i, l in enumerate(losses)]}
json.dump(summary, open(os.path.join(args["workdir"], "summary.json"), "w"))
"""


@pytest.fixture
def finished_sweep(tmp_path):
  main = tmp_path / "fake_main.py"
  main.write_text(FAKE_MAIN)
  lrn = sweeps.axis("lrn", values={"off": {"model.lrn": False}, "across": {"model.lrn": True}})
  sweep = sweeps.Sweep(
    "experiments/fashion_mnist.py",
    sweeps.product(sweeps.seeds(4), lrn, sweeps.axis("dropout", "model.dropout_rate", [0.0, 0.5])),
    claims=(
      sweeps.Claim(
        "LRN lowers top-1 error", {"lrn": "off", "dropout": 0.5}, {"lrn": "across", "dropout": 0.5}, paper=-0.014
      ),
      sweeps.Claim(
        "dropout raises top-1 error here",
        {"lrn": "across", "dropout": 0.0},
        {"lrn": "across", "dropout": 0.5},
        expected_sign=-1,
      ),
    ),
  )
  root = str(tmp_path / "sweep")
  jobs = runner.plan(sweep, root, ("python3", str(main)))
  runner.write_manifest(sweep, jobs, root)
  assert runner.run_locally(jobs, parallel=2, report=lambda m: None) == []
  return root


def test_claims_get_paired_intervals_and_verdicts(finished_sweep):
  manifest = json.load(open(os.path.join(finished_sweep, "sweep.json")))
  results = report.load_results(finished_sweep)
  lrn, dropout = (claims.evaluate_claim(c, results) for c in manifest["claims"])
  assert lrn["seeds"] == 4 and math.isclose(lrn["interval"].mean, -0.01, abs_tol=1e-9)
  assert lrn["verdict"] == "agrees"
  assert math.isclose(dropout["interval"].mean, 0.01, abs_tol=1e-9) and dropout["verdict"] == "disagrees"


def test_report_shows_over_fitting_intervals_and_verdict_lines(finished_sweep):
  table = open(report.write_report(finished_sweep, hparams=False)["table"]).read()
  assert "| top-1 95 % CI | over-fit runs | test-loss rise | steps to converge |" in table
  assert "| 4/4 | 0.100 +- 0.000 |" in table  # dropout 0: all four over-fit, the test loss rose by 0.1
  assert "| 0/4 |" in table
  assert "- **LRN lowers top-1 error**: treatment - baseline = -1.00 points of top-1 error" in table
  assert "paper: -1.4 -> **agrees**" in table
  assert "-> **disagrees**" in table
