"""AlexNet on CIFAR-10 (tfds downloads it when online): the Fashion-MNIST recipe on colour images.

The 32x32 images are resized and randomly cropped to AlexNet's smallest input (67x67, pool5 1x1),
flipped, and fed to a half-width two-tower network.

  python -m alexnet_jax.main --workdir=runs/c10 --config=experiments/cifar10.py
"""

import ml_collections

from experiments import common, fashion_mnist


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = fashion_mnist.small_data_config()
  config.dataset = "cifar10"
  config.input.resize_size = 76
  config.num_epochs = 30.0
  return common.apply_variant(config, arg)
