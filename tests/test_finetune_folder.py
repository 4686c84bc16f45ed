"""``experiments/finetune.py``: a source run's net and test preprocessing, fine-tuned on a picture folder,
end to end from the command line to ``predict``."""

import json
import os
import subprocess
import sys

import pytest
from support import picture_folder, smoke_run

from alexnet_jax.data import registry
from alexnet_jax.train import run_config
from experiments import fashion_mnist, finetune


def recorded_source(folder, **model) -> str:
  """A run directory holding only the config.json of the Fashion-MNIST :smoke recipe (with ``model`` fields)."""
  config = fashion_mnist.get_config("smoke")
  config.model.in_channels = 3
  config.model.update(model)
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "config.json"), "w") as f:
    f.write(config.to_json_best_effort())
  return str(folder)


def test_the_config_takes_the_sources_net_and_test_views_and_the_folders_classes(tmp_path):
  source = recorded_source(tmp_path / "source", width=0.25)
  pictures = picture_folder.write(tmp_path / "pictures", per_class=1)
  config = finetune.get_config(f"{source},{pictures}")
  recorded = fashion_mnist.get_config("smoke")
  assert config.model.width == 0.25 and config.model.in_channels == 3 and config.model.num_classes == 3
  assert config.model.channels == recorded.model.channels and config.model.input_size == recorded.input.crop_size
  for name in ("resize", "resize_size", "crop_size", "normalization", "mean", "eval_crops"):
    assert config.input[name] == recorded.input[name], name
  assert config.input.mean_pixel == (round(registry.get("fashion_mnist").mean[0] * 255, 4),)  # the source's mean
  assert (config.dataset, config.image_folder, config.init_from) == ("image_folder", pictures, source)
  assert config.trainable == "fc6|fc7|fc8"
  smoke = finetune.get_config(f"{source},{pictures},smoke")
  assert smoke.batch_size == 16 and smoke.model.to_dict() == config.model.to_dict()  # smoke keeps the net
  assert set(config.to_dict()) == set(run_config.default_config().to_dict())


@pytest.mark.parametrize(
  ("arg", "words"),
  [
    ("only_one", "finetune.py needs the source run and the picture folder"),
    ("MISSING,pictures", "the source MISSING holds no run (no config.json)"),
  ],
)
def test_a_missing_source_or_folder_is_one_error(arg, words):
  with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
    finetune.get_config(arg)


def test_a_source_that_reads_grey_images_is_refused(tmp_path):
  source = recorded_source(tmp_path / "source", in_channels=1)
  with pytest.raises(ValueError, match="reads 1-channel images, a folder's pictures RGB"):
    finetune.get_config(f"{source},{picture_folder.write(tmp_path / 'pictures', per_class=1)}")


def _command(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, *args], cwd=smoke_run.REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_fine_tuning_on_a_folder_from_the_command_line_beats_chance_and_predict_names_a_sub_folder(tmp_path):
  """A :smoke source (trained on mock data, RGB input), its fc6-fc8 fine-tuned on three colours."""
  source = str(tmp_path / "source")
  trained = _command(
    smoke_run.MAIN_ON_MOCK_DATA,
    f"--workdir={source}",
    "--config=experiments/fashion_mnist.py:smoke",
    "--config.model.in_channels=3",
  )
  assert trained.returncode == 0, trained.stderr[-3000:]
  pictures = picture_folder.write(tmp_path / "pictures")
  workdir = str(tmp_path / "fine_tuned")
  tuned = _command(
    "-m",
    "alexnet_jax.main",
    f"--workdir={workdir}",
    f"--config=experiments/finetune.py:{source},{pictures},smoke",
    f"--config.data_dir={tmp_path / 'tfds'}",
    "--config.holdout_fraction=0.25",  # ~18 held-out pictures
    "--config.num_epochs=10",
    "--config.optimizer.learning_rate=0.05",
  )
  assert tuned.returncode == 0, tuned.stderr[-3000:]
  assert f"Starting from the weights of {source}" in tuned.stderr
  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  assert summary["eval_count"] >= 10 and summary["eval_top1_error"] <= 0.2, summary  # chance: 2/3 wrong

  picture = os.path.join(pictures, "green", "green_005.jpg")
  predicted = _command("-m", "alexnet_jax.predict", f"--workdir={workdir}", picture)
  assert predicted.returncode == 0, predicted.stderr[-3000:]
  best = predicted.stdout.splitlines()[1].split()  # the picture, then "PERCENT  CLASS" best first
  assert best[-1] in picture_folder.COLOURS, predicted.stdout
