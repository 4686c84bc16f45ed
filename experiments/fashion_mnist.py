"""The embedded default: AlexNet on Fashion-MNIST, sized to train on a 2-core CPU.

Grey 28x28 images are replicated to three channels (as the paper does for grey images), resized,
randomly cropped and flipped. The network keeps AlexNet's structure (five convs, LRN, overlapping
pooling, three FC layers with dropout, two towers) at a smaller input and width.

  python -m alexnet_jax.main --workdir=runs/fm --config=experiments/fashion_mnist.py
  python -m alexnet_jax.main --workdir=/tmp/fm --config=experiments/fashion_mnist.py:smoke
"""

import ml_collections

from experiments import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  # Data (tfds name and splits; see alexnet_jax/input_pipeline.py).
  config.dataset = "fashion_mnist"
  config.data_dir = ""  # tfds data_dir; "" = TFDS_DATA_DIR or ~/tensorflow_datasets
  config.manual_dir = ""  # where manually downloaded archives live (imagenet2012)
  config.train_split = "train"
  config.eval_split = "test"
  config.input = ml_collections.ConfigDict()
  config.input.resize_size = 72  # images are resized to this side ...
  config.input.crop_size = 67  # ... then cropped to the model's input size
  config.input.random_crop = True
  config.input.random_flip = True
  config.input.pca_noise_std = 0.0  # the paper's colour augmentation (0.1 on ImageNet)
  config.input.normalization = "standardize"  # or "subtract_mean" (the paper: mean-centred raw RGB)
  config.input.eval_crops = "center"  # "center" or "ten_crop" (4 corners + centre, flipped)
  config.input.shuffle_buffer = 16_384
  config.eval_max_examples = -1  # -1 = the whole eval split

  # Model: keyword arguments of alexnet_jax.models.AlexNet.
  config.model = ml_collections.ConfigDict()
  config.model.num_classes = 10
  config.model.towers = 2
  config.model.width = 0.5
  config.model.input_size = config.input.get_ref("crop_size")
  config.model.lrn = True
  config.model.lrn_region = "across"
  config.model.lrn_size = 5
  config.model.lrn_k = 2.0
  config.model.lrn_alpha = 1e-4
  config.model.lrn_beta = 0.75
  config.model.lrn_position = "after_relu"
  config.model.lrn_per_tower = True
  config.model.dropout_rate = 0.25  # the paper: 0.5, which "roughly doubles" the steps to converge
  config.model.pool_window = 3
  config.model.pool_stride = 2
  config.model.init = "he"  # the paper's N(0, 0.01) init does not train on small data
  config.model.dtype = "float32"

  # Optimiser: "paper_sgd" (the paper's rule, LR inside the momentum trace) or optax "sgd".
  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "sgd"
  config.optimizer.learning_rate = 0.02
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 5e-4
  config.schedule = ml_collections.ConfigDict()
  config.schedule.name = "cosine"  # "constant", "cosine", "piecewise" or "plateau"
  config.schedule.warmup_steps = 100
  config.schedule.boundaries = ()  # piecewise: fractions of training where LR is multiplied
  config.schedule.decay_factor = 0.1  # piecewise and plateau
  config.schedule.plateau_patience = 1  # plateau: evals without improvement before a drop
  config.schedule.max_drops = 3  # plateau: the paper divided the LR by 10 three times

  config.batch_size = 64
  config.num_epochs = 6.0
  config.num_train_steps = -1  # > 0 overrides num_epochs
  config.log_every_steps = 50
  config.eval_every_steps = -1  # -1 = once per epoch
  config.checkpoint_every_steps = 500
  config.keep_checkpoints = 3
  config.profile_steps = ""  # "A:B": a jax.profiler trace of steps A..B-1 in WORKDIR/profile; "" = off

  # Parallelism: devices on the mesh's "tower" axis (1 = pure data parallelism).
  config.tower_parallel = 1
  config.parallelism = "towers"  # "towers" (2012: every layer split) or "weird_trick" (2014: FC only)

  return common.apply_variant(config, arg)
