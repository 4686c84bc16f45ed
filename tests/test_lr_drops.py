"""The learning-rate drops of a run, made visible: the plateau rule's decisions in ``summary.json``
(``lr_drops``) and TensorBoard, kept across a resume; the references' fixed schedules in a run."""

import glob
import json
import os
import subprocess
import sys

import pytest
from support import references
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.util import tensor_util

from alexnet_jax.train import loop
from experiments import imagenet2012

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The smoke run's steps (batch 16 of the 64 mock images: 4 steps per epoch).
STEPS = 4


def _always_on_a_plateau():
  """Evaluations after every step; min_delta 1 (the whole error range): after the first, no evaluation
  is an improvement, so with patience 1 each of them drops the rate, until max_drops (3)."""
  config = imagenet2012.get_config("smoke")
  config.eval_every_steps = 1
  config.schedule.plateau_patience = 1
  config.schedule.min_delta = 1.0
  return config


def _events(workdir):
  """{tag: [(step, value)]} of the run's TensorBoard scalars and texts."""
  found = {}
  for path in sorted(glob.glob(os.path.join(workdir, "events.out.tfevents.*"))):
    for event in event_file_loader.EventFileLoader(path).Load():
      for value in event.summary.value:
        array = tensor_util.make_ndarray(value.tensor) if value.HasField("tensor") else None
        if array is not None:
          item = array.item() if array.size == 1 else array.tolist()
          found.setdefault(value.tag, []).append((event.step, item.decode() if isinstance(item, bytes) else item))
  return found


@pytest.mark.slow
def test_plateau_drops_are_recorded_written_and_kept_across_a_resume(mock_data, tmp_path):
  straight_dir = str(tmp_path / "straight")
  summary = loop.train_and_evaluate(_always_on_a_plateau(), straight_dir)
  drops = summary["lr_drops"]
  assert [(d["drop"], d["step"]) for d in drops] == [(1, 2), (2, 3), (3, 4)]
  assert [d["old_learning_rate"] for d in drops] == pytest.approx([1e-2, 1e-3, 1e-4])
  assert [d["new_learning_rate"] for d in drops] == pytest.approx([1e-3, 1e-4, 1e-5])
  assert [d["epoch"] for d in drops] == pytest.approx([0.5, 0.75, 1.0])
  history = {entry["step"]: entry["top1_error"] for entry in summary["eval_history"]}
  assert all(d["eval_top1_error"] == pytest.approx(history[d["step"]]) for d in drops)
  with open(os.path.join(straight_dir, "summary.json")) as f:
    assert json.load(f)["lr_drops"] == drops

  events = _events(straight_dir)
  rates = dict(events["schedule/learning_rate"])  # the next step's rate, after any drop
  assert [rates[step] for step in range(1, STEPS + 1)] == pytest.approx([1e-2, 1e-3, 1e-4, 1e-5])
  texts = events["schedule/lr_drop"]
  assert [step for step, _ in texts] == [2, 3, 4]
  assert "learning rate 0.01 -> 0.001" in texts[0][1]

  # The same run stopped after step 2 and resumed: the drop made before the stop is still reported.
  resumed_dir = str(tmp_path / "resumed")
  first_half = _always_on_a_plateau()
  first_half.num_train_steps = 2
  assert [d["step"] for d in loop.train_and_evaluate(first_half, resumed_dir)["lr_drops"]] == [2]
  resumed = loop.train_and_evaluate(_always_on_a_plateau(), resumed_dir, allow_config_change=True)
  assert [(d["drop"], d["step"]) for d in resumed["lr_drops"]] == [(1, 2), (2, 3), (3, 4)]
  for name in ("old_learning_rate", "new_learning_rate", "eval_top1_error"):
    assert [d[name] for d in resumed["lr_drops"]] == pytest.approx([d[name] for d in drops]), name


@pytest.mark.slow
def test_the_caffe_recipe_trains_from_the_command_line_on_a_synthetic_store(tmp_path):
  """``imagenet2012.py:caffe:smoke`` through ``python -m alexnet_jax.main`` on a synthetic ImageNet and
  its store of warped squares (Caffe's resize); stepsize shrunk to 1 so that its steps show: rates
  0.01 then 0.001 (their mean is the logged train rate), 1e-4 for the step after."""
  from alexnet_jax.data import prepare_store
  from alexnet_jax.yardsticks import synthetic_imagenet

  config = imagenet2012.get_config("caffe:smoke")
  config.data_dir = str(tmp_path / "tfds")
  synthetic_imagenet.prepare(config.data_dir, num_train=24, num_validation=8)
  prepare_store.prepare(config, workers=1, progress=False)
  workdir = str(tmp_path / "caffe")
  flags = [f"--config.data_dir={config.data_dir}", "--config.batch_size=8", "--config.num_train_steps=2"]
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "alexnet_jax.main",
      f"--workdir={workdir}",
      "--config=experiments/imagenet2012.py:caffe:smoke",
      *flags,
      "--config.schedule.step_every=1",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert "mean image" in result.stderr  # the store's, as Caffe subtracts
  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  assert summary["step"] == 2 and summary["lr_drops"] == []  # drops are the plateau rule's; this is "step"
  recorded = summary["config"]
  assert (recorded["schedule"]["name"], recorded["optimizer"]["bias_lr_multiplier"]) == ("step", 2.0)
  assert (recorded["input"]["resize"], recorded["model"]["lrn_per_tower"]) == ("warp", False)
  assert summary["train_learning_rate"] == pytest.approx((1e-2 + 1e-3) / 2)
  assert dict(_events(workdir)["schedule/learning_rate"])[2] == pytest.approx(1e-4)


@pytest.mark.slow
def test_the_cuda_convnet2_recipe_trains_with_its_discrete_exponential_steps(mock_data, tmp_path):
  """``imagenet2012.py:cuda_convnet2:smoke``: four steps at lr.cu's rates for progress 0, 1/4, 2/4, 3/4 (the
  weights' and the biases' own), with its 1/1.1 scale of the training views in the jitted step; TensorBoard
  shows both rates of the next step."""
  summary = loop.train_and_evaluate(imagenet2012.get_config("cuda_convnet2:smoke"), str(tmp_path / "ccn2"))
  weights = [references.cuda_convnet2_dexp(0.02, 250, 4, step / STEPS) for step in range(STEPS + 1)]
  biases = [references.cuda_convnet2_dexp(0.04, 25, 2, step / STEPS) for step in range(STEPS + 1)]
  assert summary["step"] == STEPS and summary["train_learning_rate"] == pytest.approx((weights[2] + weights[3]) / 2)
  events = _events(str(tmp_path / "ccn2"))
  assert dict(events["schedule/learning_rate"])[STEPS] == pytest.approx(weights[STEPS])
  assert dict(events["schedule/bias_learning_rate"])[STEPS] == pytest.approx(biases[STEPS])
