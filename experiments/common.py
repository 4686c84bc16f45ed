"""What every experiment config shares: the variants after the colon (``NAME.py:smoke``)."""

import ml_collections

# The smallest square input AlexNet's layer stack accepts with 3/2 pooling (pool5 is 1x1).
SMOKE_CROP_SIZE = 67


def apply_variant(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """Applies the variant named after the config path's colon; no variant leaves it unchanged."""
  if arg == "smoke":
    shrink_to_smoke(config)
  elif arg:
    raise ValueError(f"unknown config variant {arg!r}; known: 'smoke'")
  return config


def shrink_to_smoke(config: ml_collections.ConfigDict) -> None:
  """A few tiny steps end to end (< 1 minute): the CI and quick-check variant.

  Keeps the recipe (dataset, augmentation, optimizer, schedule, eval crops) and shrinks only
  sizes: the network's width, the input side, the batch, the number of steps and eval examples.
  """
  if config.input.crop_size > SMOKE_CROP_SIZE:
    ratio = config.input.resize_size / config.input.crop_size
    config.input.crop_size = SMOKE_CROP_SIZE  # model.input_size follows (a reference)
    config.input.resize_size = round(SMOKE_CROP_SIZE * ratio)
  config.model.width = 0.125
  config.batch_size = 16
  config.num_train_steps = 4
  config.schedule.warmup_steps = min(config.schedule.warmup_steps, 1)
  config.log_every_steps = 2
  config.eval_every_steps = 4
  config.checkpoint_every_steps = 2
  config.eval_max_examples = 64
