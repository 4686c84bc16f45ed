"""Sweep expansion, naming, the runner's skip/resume/failure logic, and the report on fake runs."""

import dataclasses
import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

from alexnet_jax import sweeps
from alexnet_jax.sweeps import report, runner

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE_SWEEP_MAIN = os.path.join(REPO, "tests", "support", "fake_sweep_main.py")


def _experiment_sweeps():
  spec = importlib.util.spec_from_file_location("exp_sweeps", os.path.join(REPO, "experiments", "ablations.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture
def fake_main(tmp_path):
  return (sys.executable, FAKE_SWEEP_MAIN)


def test_product_and_zip():
  runs = sweeps.product(sweeps.axis("a", "x", [1, 2, 3]), sweeps.axis("b", "y", ["p", "q"]))
  assert len(runs) == 6
  assert runs[0].labels == {"a": 1, "b": "p"} and runs[0].overrides == {"x": 1, "y": "p"}
  assert runs[1].labels == {"a": 1, "b": "q"}  # the first axis varies slowest
  zipped = sweeps.zip_axes(sweeps.axis("a", "x", [1, 2]), sweeps.axis("b", "y", [3, 4]))
  assert [r.overrides for r in zipped] == [{"x": 1, "y": 3}, {"x": 2, "y": 4}]
  with pytest.raises(ValueError, match="different lengths"):
    sweeps.zip_axes(sweeps.axis("a", "x", [1, 2]), sweeps.axis("b", "y", [3]))
  with pytest.raises(ValueError, match="same fields"):
    sweeps.product(sweeps.axis("a", "x", [1]), sweeps.axis("b", "x", [2]))


def test_labelled_axis_and_names_are_unique():
  lrn = sweeps.axis("lrn", values={"off": {"model.lrn": False}, "within": {"model.lrn_region": "within"}})
  runs = sweeps.product(lrn, sweeps.seeds(2))
  assert [r.name for r in runs] == ["lrn=off,seed=0", "lrn=off,seed=1", "lrn=within,seed=0", "lrn=within,seed=1"]
  assert runs[2].overrides == {"model.lrn_region": "within", "seed": 0}
  with pytest.raises(ValueError, match="identical labels"):
    sweeps.Sweep("c.py", runs + runs[:1])


def test_override_flags_format():
  flags = sweeps.override_flags({"model.lrn": False, "model.dropout_rate": 0.25, "schedule.boundaries": (0.5, 0.75)})
  assert flags == [
    "--config.model.lrn=False",
    "--config.model.dropout_rate=0.25",
    "--config.schedule.boundaries=(0.5,0.75)",
  ]


def test_experiment_sweeps_have_the_required_cells():
  module = _experiment_sweeps()
  lrn_dropout = module.lrn_dropout()
  assert len(lrn_dropout.runs) == 3 * 4 * 3
  cells = {tuple((k, v) for k, v in r.labels.items() if k != "seed") for r in lrn_dropout.runs}
  assert len(cells) == 12
  assert {r.labels["lrn"] for r in lrn_dropout.runs} == {"off", "across", "within"}
  assert {r.labels["dropout"] for r in lrn_dropout.runs} == {0.0, 0.25, 0.5, 0.75}
  pooling = module.pooling(num_seeds=4)
  assert len(pooling.runs) == 8
  assert {(r.overrides["model.pool_window"], r.overrides["model.pool_stride"]) for r in pooling.runs} == {
    (3, 2),
    (2, 2),
  }


def test_overfit_sweeps_test_the_papers_claims():
  module = _experiment_sweeps()
  overfit = module.overfit()
  assert len(overfit.runs) == 5 * 3 * 3
  assert {r.labels["dropout"] for r in overfit.runs} == {0.0, 0.25, 0.5}  # 0.75 left out: unstable
  assert overfit.base_overrides["input.random_crop"] is False and overfit.convergence_train_loss == 0.3
  labels = [{k: v for k, v in r.labels.items() if k != "seed"} for r in overfit.runs]
  for claim in overfit.claims:  # every claim names two cells the sweep has
    assert claim.baseline in labels and claim.treatment in labels
  assert {c.metric for c in overfit.claims} >= {"eval_top1_error", "eval_loss_rise", "steps_to_converge"}
  pooling = module.overfit_pooling()
  assert len(pooling.runs) == 10 and pooling.base_overrides["model.dropout_rate"] == 0.0
  gpu = module.overfit(scale="gpu")
  assert gpu.base_overrides["model.width"] == 1.0 and gpu.runs == overfit.runs


def _sweep(num_seeds=2):
  return sweeps.Sweep(
    "experiments/fashion_mnist.py",
    sweeps.product(
      sweeps.axis("lrn", values={"off": {"model.lrn": False}, "across": {"model.lrn": True}}),
      sweeps.axis("dropout", "model.dropout_rate", [0.0, 0.5, 0.75]),
      sweeps.seeds(num_seeds),
    ),
    {"num_epochs": 1.0},
  )


def test_plan_builds_main_commands(tmp_path):
  jobs = runner.plan(_sweep(), str(tmp_path), ("python", "-m", "alexnet_jax.main"))
  assert len(jobs) == 12
  command = jobs[0].command
  assert command[:3] == ("python", "-m", "alexnet_jax.main")
  assert f"--workdir={tmp_path}/lrn=off,dropout=0.0,seed=0" in command
  assert "--config=experiments/fashion_mnist.py" in command
  assert "--config.num_epochs=1.0" in command and "--config.model.lrn=False" in command
  assert "--config.seed=0" in command


@pytest.mark.slow
def test_runner_skips_finished_and_reports_failures(tmp_path, fake_main, monkeypatch):
  monkeypatch.setenv("FAKE_MODE", "fail_075")
  jobs = runner.plan(_sweep(), str(tmp_path), fake_main)
  messages = []
  failed = runner.run_locally(jobs, parallel=2, report=messages.append)
  assert sorted(j.run.name for j in failed) == sorted(j.run.name for j in jobs if j.run.labels["dropout"] == 0.75)
  assert all(j.finished for j in jobs if j.run.labels["dropout"] != 0.75)
  assert sum("FAILED" in m for m in messages) == 4 and "[12/12]" in messages[-1] and "ETA" in messages[-1]
  # Re-running skips the 8 finished runs and retries only the failed ones (now succeeding).
  monkeypatch.setenv("FAKE_MODE", "")
  messages.clear()
  assert runner.run_locally(jobs, parallel=2, report=messages.append) == []
  assert messages[0].startswith("8/12 runs already finished")
  attempts = {j.run.name: int(open(os.path.join(j.workdir, "attempts")).read()) for j in jobs}
  assert all(attempts[j.run.name] == (2 if j.run.labels["dropout"] == 0.75 else 1) for j in jobs)


@pytest.mark.slow
def test_rerun_resumes_an_interrupted_run_in_the_same_workdir(tmp_path, fake_main, monkeypatch):
  monkeypatch.setenv("FAKE_MODE", "crash_first")
  jobs = runner.plan(_sweep(num_seeds=1), str(tmp_path), fake_main)[:2]
  assert len(runner.run_locally(jobs, report=lambda m: None)) == 2
  assert runner.run_locally(jobs, report=lambda m: None) == []
  for job in jobs:
    assert open(os.path.join(job.workdir, "attempts")).read() == "2"
    log = open(os.path.join(job.workdir, runner.LOG_FILE)).read()
    assert log.count("$ ") == 2  # both attempts logged to the same file


def test_slurm_array_script(tmp_path):
  jobs = runner.plan(_sweep(), str(tmp_path / "sw"), ("python", "-m", "alexnet_jax.main"))
  path = runner.slurm_array_script(jobs, str(tmp_path / "sw"), parallel=3, sbatch_options=["--gres=gpu:1"])
  script = open(path).read()
  assert "#SBATCH --array=0-11%3" in script and "#SBATCH --gres=gpu:1" in script
  assert "SLURM_ARRAY_TASK_ID" in script
  commands = open(tmp_path / "sw" / "commands.txt").read().splitlines()
  assert len(commands) == 12 and "--config.model.dropout_rate=0.75" in commands[4]


@pytest.mark.slow
def test_report_aggregates_fake_runs(tmp_path, fake_main):
  root = str(tmp_path / "sweep")
  sweep = _sweep(num_seeds=3)
  jobs = runner.plan(sweep, root, fake_main)
  runner.write_manifest(sweep, jobs, root)
  assert runner.run_locally(jobs, parallel=2, report=lambda m: None) == []
  cells = report.group_cells(report.load_results(root))
  assert len(cells) == 6
  mean, std, n = cells[0].stat("eval_top1_error")  # lrn off, dropout 0: 0.10 + 0.001 * seed
  assert n == 3 and math.isclose(mean, 0.101) and math.isclose(std, 0.001)
  written = report.write_report(root)
  table = open(written["table"]).read()
  assert "| lrn | dropout | top-1 error (%) |" in table
  assert "| off | 0.0 | 10.10 +- 0.10 |" in table and "| across | 0.75 | 10.60 +- 0.10 |" in table
  assert "| 0.303 +- 0.003 | 0.202 +- 0.002 | 3 | 1.0 |" in table  # eval loss, train loss, seeds
  with open(written["error_plot"], "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert written["error_plot"].endswith("error_vs_dropout.png")
  hparams_runs = sorted(os.listdir(written["hparams"]))
  assert "lrn=across,dropout=0.5,seed=2" in hparams_runs
  curves = report.read_curves(os.path.join(written["hparams"], "lrn=across,dropout=0.5,seed=2"))
  assert math.isclose(curves["eval_top1_error"][0][1], 0.10 + 0.01 - 0.01 + 0.002, rel_tol=1e-6)


@pytest.mark.slow
def test_report_counts_unfinished_runs(tmp_path, fake_main):
  root = str(tmp_path / "sweep")
  sweep = _sweep(num_seeds=1)
  jobs = runner.plan(sweep, root, fake_main)
  runner.write_manifest(sweep, jobs, root)
  runner.run_locally(jobs[:2], report=lambda m: None)
  written = report.write_report(root, hparams=False)
  table = open(written["table"]).read()
  assert "2/6 runs finished" in table
  assert table.count("| - | - | - | 0 |") == 4


@pytest.mark.slow
def test_report_draws_the_curves_the_sweep_names(tmp_path, fake_main):
  root = str(tmp_path / "sweep")
  sweep = dataclasses.replace(_sweep(num_seeds=2), curves={"lrn": "across", "dropout": (0.0, 0.75)})
  jobs = runner.plan(sweep, root, fake_main)
  runner.write_manifest(sweep, jobs, root)
  assert runner.run_locally(jobs, parallel=2, report=lambda m: None) == []
  chosen = report._curve_runs(
    report.load_results(root),
    "dropout",  # pylint: disable=protected-access
    report._manifest(root)["curves"],
  )  # pylint: disable=protected-access
  assert sorted(r.name for r in chosen) == ["lrn=across,dropout=0.0,seed=0", "lrn=across,dropout=0.75,seed=0"]
  default = report._curve_runs(report.load_results(root), "dropout", None)  # pylint: disable=protected-access
  assert sorted(r.name for r in default) == ["lrn=off,dropout=0.0,seed=0", "lrn=off,dropout=0.75,seed=0"]


@pytest.mark.slow
def test_smoke_sweep_end_to_end_through_the_cli(tmp_path):
  """launch/sweep.py trains the smoke sweep (on mock data), then writes the table and plots."""
  root = tmp_path / "smoke"
  main_command = f"{sys.executable} {os.path.join(REPO, 'tests', 'support', 'mock_data_main.py')}"
  command = [
    sys.executable,
    os.path.join(REPO, "launch", "sweep.py"),
    "--sweep=smoke",
    f"--root={root}",
    "--parallel=2",
    f"--main_command={main_command}",
  ]
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
  assert "[2/2]" in result.stdout
  table = (root / "results.md").read_text()
  assert "2/2 runs finished" in table and "| off | 0.0 |" in table and "| across | 0.5 |" in table
  assert (root / "error_vs_dropout.png").read_bytes()[:4] == b"\x89PNG"
  assert (root / "curves.png").exists()
  summary = json.loads((root / "seed=0,lrn=across,dropout=0.5" / "summary.json").read_text())
  assert summary["config"]["model"]["dropout_rate"] == 0.5 and summary["config"]["model"]["lrn"] is True
  # Re-running finds every run finished and trains nothing.
  again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert again.returncode == 0 and "2/2 runs already finished" in again.stdout
