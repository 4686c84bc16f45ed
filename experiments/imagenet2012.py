"""The paper's recipe end to end: AlexNet on ILSVRC-2012 (Krizhevsky et al., 2012, §3-§6).

tfds ``imagenet2012`` is built from the user's own download: put ILSVRC2012_img_train.tar and
ILSVRC2012_img_val.tar in ``manual_dir`` (default: <data_dir>/downloads/manual).

* Data (§4.1): shorter side 256, random 227x227 crops and horizontal flips, the per-pixel mean
  subtracted, PCA colour noise alpha ~ N(0, 0.1); evaluation averages the softmax over ten crops
  (four corners and the centre, and their flips).
* Model (§3): two towers, LRN (k=2, n=5, alpha=1e-4, beta=0.75) after the ReLU of conv1 and conv2,
  overlapping 3/2 pooling, dropout 0.5 in fc6/fc7, weights N(0, 0.01), biases 1 in conv2, conv4,
  conv5, fc6, fc7.
* Training (§5): batch 128, the paper's momentum rule (``paper_sgd``: m=0.9, wd=5e-4, eps=0.01),
  eps divided by 10 whenever the validation error stops improving (three times), 90 epochs.

  python -m alexnet_jax.main --workdir=runs/in1k --config=experiments/imagenet2012.py \
      --config.manual_dir=/data/imagenet
"""

import ml_collections

from experiments import common, fashion_mnist


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = fashion_mnist.get_config()
  config.dataset = "imagenet2012"
  config.train_split = "train"
  config.eval_split = "validation"

  config.input.resize_size = 256  # shorter side, then the central 256x256
  config.input.crop_size = 227  # model.input_size follows (a reference)
  config.input.random_crop = True
  config.input.random_flip = True
  config.input.pca_noise_std = 0.1
  config.input.normalization = "subtract_mean"
  config.input.eval_crops = "ten_crop"
  config.input.shuffle_buffer = 16_384

  config.model.num_classes = 1000
  config.model.towers = 2
  config.model.width = 1.0
  config.model.lrn = True
  config.model.lrn_region = "across"
  config.model.lrn_position = "after_relu"
  config.model.lrn_per_tower = True
  config.model.dropout_rate = 0.5
  config.model.init = "paper"

  config.optimizer.name = "paper_sgd"
  config.optimizer.learning_rate = 0.01
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 5e-4
  config.schedule.name = "plateau"
  config.schedule.warmup_steps = 0
  config.schedule.decay_factor = 0.1
  # The paper gives no patience; per-epoch validation is noisy, so wait two epochs.
  config.schedule.plateau_patience = 2
  config.schedule.max_drops = 3

  config.batch_size = 128
  config.num_epochs = 90.0
  config.num_train_steps = -1
  config.log_every_steps = 100
  config.eval_every_steps = -1  # once per epoch: the plateau rule watches it
  config.checkpoint_every_steps = 2_000
  config.keep_checkpoints = 3
  # The paper's two GPUs hold one tower each: set 2 on two (or 2k) accelerators.
  config.tower_parallel = 1
  return common.apply_variant(config, arg)
