"""Fine-tuning a trained or imported run on your own pictures: a folder with one sub-folder per class.

  python -m alexnet_jax.main --workdir=runs/mine --config=experiments/finetune.py:runs/bvlc,pictures
  python -m alexnet_jax.main --workdir=/tmp/mine --config=experiments/finetune.py:runs/bvlc,pictures,smoke

The part after the colon is ``SOURCE,FOLDER[,smoke]``: the work directory of the run to start from
(trained here, or written by ``alexnet_jax.import_weights``) and the picture folder. Both are named
there, not by ``--config.init_from`` / ``--config.image_folder`` alone, because ``--config.X`` overrides
apply after this file's ``get_config``, which needs them: the net must be the source's (its model
options, from its ``config.json``), conv1 must see the pictures as the source saw its own (its test
preprocessing: resize, sizes, normalisation, mean), and fc8 has one output per sub-folder.

What it sets: ``dataset="image_folder"`` (the folder prepared once into a store, ``holdout_fraction``
0.1 held out as the validation split that evaluations read), ``init_from`` the source (fc8 drawn anew
for the folder's classes), ``trainable="fc6|fc7|fc8"`` (the convolutions frozen: ``--config.trainable=fc8``
trains the last layer alone), plain SGD with momentum at a small rate on a cosine schedule, 10 epochs,
evaluated every epoch. ``smoke``: 3 epochs of batches of 16, the centre view only.
"""

import os

import ml_collections

from alexnet_jax.data import image_folder, registry
from alexnet_jax.inference import trained_run
from alexnet_jax.train import run_config, run_dir

USAGE = "experiments/finetune.py:SOURCE,FOLDER[,smoke] (the run to start from, the folder of class sub-folders)"
SMOKE = "smoke"
# The source's config.input fields that make its test views: the fine-tuned net sees pictures as it did.
TEST_PREPROCESSING = ("resize", "resize_size", "crop_size", "normalization", "mean", "mean_pixel", "eval_crops")
HEAD = "fc6|fc7|fc8"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The fine-tuning config of ``SOURCE,FOLDER[,smoke]`` (see the module docstring)."""
  source, folder, smoke = parse(arg)
  if not os.path.isfile(os.path.join(source, run_dir.CONFIG_FILE)):
    raise ValueError(
      f"the source {source} holds no run (no {run_dir.CONFIG_FILE}): train one with alexnet_jax.main, or import"
      " a reference's weights with alexnet_jax.import_weights"
    )
  try:
    recorded = trained_run.read_config(source)
  except trained_run.RunError as error:
    raise ValueError(f"the source run {source} cannot be read: {error}") from None
  if recorded.model.in_channels != registry.STORE_CHANNELS:
    raise ValueError(
      f"the source run {source} reads {recorded.model.in_channels}-channel images, a folder's pictures RGB"
    )
  config = run_config.default_config()
  copy_model(config, recorded)
  copy_test_preprocessing(config, recorded, source)
  config.dataset = image_folder.NAME
  config.image_folder = folder
  config.model.num_classes = image_folder.class_count(folder)
  config.init_from = source
  config.trainable = HEAD
  set_training(config)
  if smoke:
    config.batch_size = 16
    config.num_epochs = 3.0
    config.input.eval_crops = "center"
  return config


def parse(arg: str | None) -> tuple[str, str, bool]:
  """(source, folder, smoke) of ``SOURCE,FOLDER[,smoke]``; ValueError with the usage otherwise."""
  parts = [part for part in (arg or "").split(",") if part]
  smoke = bool(parts) and parts[-1] == SMOKE
  parts = parts[:-1] if smoke else parts
  if len(parts) != 2:
    raise ValueError(f"finetune.py needs the source run and the picture folder: {USAGE}, not {arg!r}")
  return parts[0], parts[1], smoke


def copy_model(config: ml_collections.ConfigDict, recorded: ml_collections.ConfigDict) -> None:
  """Every model option of the source's config (sequences as the defaults' tuples); ``input_size``
  keeps following ``input.crop_size``."""
  for name, value in recorded.model.items():
    if name != "input_size":
      config.model[name] = tuple(value) if isinstance(config.model[name], tuple) else value


def copy_test_preprocessing(config, recorded, source: str) -> None:
  """The source's test views (:data:`TEST_PREPROCESSING`) and mean. Its own mean image file (an imported
  run's) is read from its directory; its dataset's fixed per-channel mean becomes ``mean_pixel``, so the
  pictures lose the mean the source's pictures lost, not the folder's."""
  for name in TEST_PREPROCESSING:
    config.input[name] = tuple(recorded.input[name]) if name == "mean_pixel" else recorded.input[name]
  if recorded.input.mean_image_file:
    config.input.mean_image_file = os.path.abspath(os.path.join(source, recorded.input.mean_image_file))
  entry = registry.get(recorded.dataset)
  if recorded.input.mean == "channel" and not recorded.input.mean_pixel and entry.own_store is None:
    config.input.mean_pixel = tuple(round(value * 255, 4) for value in entry.mean)


def set_training(config: ml_collections.ConfigDict) -> None:
  """A short, gentle run: the new head learns; the copied layers move little."""
  config.optimizer.name = "sgd"
  config.optimizer.learning_rate = 0.01
  config.schedule.name = "cosine"
  config.schedule.warmup_steps = 0
  config.batch_size = 32
  config.num_epochs = 10.0
  config.eval_every_steps = -1  # every epoch
  config.log_every_steps = 10
  config.checkpoint_every_steps = 500
