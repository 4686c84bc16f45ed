"""The embedded default: the paper's recipe on Fashion-MNIST, sized to train on a 2-core CPU.

Grey 28x28 images are replicated to three channels (as the paper does for grey images), resized,
randomly cropped and flipped. The network keeps AlexNet's structure (five convs, LRN, overlapping
pooling, three FC layers with dropout, two towers) at a smaller input and width. What differs from
``imagenet2012.py`` is set below, each with its reason.

* :func:`small_data_config`: the paper's config with what a small grey dataset on a CPU needs (the
  first default recipe, 90.05 %); the ablation sweeps and CIFAR-10 build on it, so their measured
  results stay reproducible (``fashion_mnist.py:small_data``).
* :func:`recipe_config`: the default, ``make train``: the 10-minute recipe (docs/default_run.md).

  python -m alexnet_jax.main --workdir=runs/fm --config=experiments/fashion_mnist.py
  python -m alexnet_jax.main --workdir=/tmp/fm --config=experiments/fashion_mnist.py:smoke
  python -m alexnet_jax.main --workdir=/tmp/fm --config=experiments/fashion_mnist.py:small_data:smoke
"""

import ml_collections

from alexnet_jax.data import registry
from experiments import common, imagenet2012

SMALL_DATA = "small_data"  # the variant that selects small_data_config()


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The recipe, or with ``small_data`` among the colon-separated variants the earlier base."""
  variants = [name for name in (arg or "").split(":") if name]
  config = small_data_config() if SMALL_DATA in variants else recipe_config()
  return common.apply_variant(config, ":".join(name for name in variants if name != SMALL_DATA) or None)


def recipe_config() -> ml_collections.ConfigDict:
  """The default recipe: >= 93 % in <= 600 s on 2 cores (docs/default_run.md measures each change)."""
  config = small_data_config()
  config.model.width = 0.25  # 1,600-2,000 images/s at batch 64 (0.5: 550-900): 15 epochs fit
  config.model.in_channels = 1  # conv1 reads the grey image, not its RGB replica: the same net, 1.3x the speed
  config.model.fc8_zero_init = True  # first logits 0: no early loss spike (docs/training.md, "Early instability")
  config.label_smoothing = 0.1
  config.ema_decay = 0.999  # evaluations and inference use the moving average of the weights
  config.input.eval_crops = "center_flip"  # the centre crop and its mirror image, softmax averaged
  config.optimizer.learning_rate = 0.04  # 0.02: 90.36 % (seed 0)
  config.model.dropout_rate = 0.1  # under-fitting at this budget: 0.25 costs more than it regularises
  config.num_epochs = 15.0
  epoch = registry.get(config.dataset).train_examples // config.batch_size  # steps (input_spec.steps_per_epoch)
  config.eval_every_steps = 5 * epoch  # every 5 epochs (the last at the end)
  config.checkpoint_every_steps = 2_000  # ~1 minute of training; each save costs ~0.5 s of it
  return config


def small_data_config() -> ml_collections.ConfigDict:
  """The paper's config with the changes a small, grey, 28x28 dataset on a CPU needs."""
  config = imagenet2012.paper_config()
  config.dataset = "fashion_mnist"
  config.eval_split = "test"

  config.input.resize_size = 72  # 28x28 images resized to this side ...
  config.input.crop_size = 67  # ... then cropped: AlexNet's smallest input (pool5 is 1x1)
  config.input.pca_noise_std = 0.0  # no colour in grey images
  config.input.normalization = "standardize"
  config.input.mean = "channel"  # no prepared store, so no mean image
  config.input.eval_crops = "center"  # ten crops cost 10x the evaluation time here

  config.model.num_classes = 10
  config.model.width = 0.5  # half the channels: fits the 2-core time budget
  config.model.dropout_rate = 0.25  # 0.5 under-fits in 6 epochs (docs/default_run.md)
  config.model.init = "he"  # the paper's N(0, 0.01) init does not train on small data

  config.optimizer.name = "sgd"
  config.optimizer.learning_rate = 0.02
  # Decays biases too, as when the default run was measured, so its result stays reproducible.
  config.optimizer.decay_biases = True
  config.schedule.name = "cosine"  # a fixed 6-epoch budget: no plateaus to wait for
  config.schedule.warmup_steps = 100
  config.schedule.plateau_patience = 1

  config.batch_size = 64
  config.num_epochs = 6.0
  config.log_every_steps = 50
  config.checkpoint_every_steps = 500
  return config
