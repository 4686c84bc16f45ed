"""The ImageNet config is the paper's recipe (Krizhevsky et al. 2012, §2-§5) and the authors' code."""

import pytest

from alexnet_jax.config import validation
from experiments import fashion_mnist, imagenet2012


def test_the_imagenet_config_holds_the_papers_numbers():
  config = imagenet2012.get_config()
  validation.validate(config, device_count=1)
  assert config.dataset == "imagenet2012" and config.model.num_classes == 1000
  # §5: batch 128, momentum 0.9, weight decay 5e-4, eps 0.01 divided by 10 three times on plateaus, ~90 epochs.
  assert config.batch_size == 128
  assert (config.optimizer.name, config.optimizer.learning_rate) == ("paper_sgd", 0.01)
  assert (config.optimizer.momentum, config.optimizer.weight_decay) == (0.9, 5e-4)
  assert (config.schedule.name, config.schedule.decay_factor, config.schedule.max_drops) == ("plateau", 0.1, 3)
  assert config.schedule.warmup_steps == 0 and config.num_epochs == 90
  # §2, §4.1: 256x256 central squares, random 227 crops and flips, PCA noise alpha ~ N(0, 0.1), ten-crop test.
  assert (config.input.resize_size, config.input.crop_size, config.model.input_size) == (256, 227, 227)
  assert config.input.random_crop and config.input.random_flip
  assert (config.input.pca_noise_std, config.input.eval_crops) == (0.1, "ten_crop")
  assert config.input.normalization == "subtract_mean"  # raw pixels minus the mean, no std division
  # §3: two towers, LRN k=2 n=5 alpha=1e-4 beta=0.75, overlapping 3/2 pooling, dropout 0.5, the paper's init.
  assert config.model.towers == 2 and config.model.width == 1.0
  lrn = (config.model.lrn_k, config.model.lrn_size, config.model.lrn_alpha, config.model.lrn_beta)
  assert config.model.lrn and lrn == (2.0, 5, 1e-4, 0.75)
  assert (config.model.pool_window, config.model.pool_stride) == (3, 2)
  assert (config.model.dropout_rate, config.model.init, config.model.dtype) == (0.5, "paper", "float32")


def test_the_imagenet_config_follows_the_authors_code_where_the_paper_is_silent():
  """cuda-convnet2 / Caffe: colour noise alpha_i * sigma_i, a 256x256x3 mean image, no decay on biases."""
  config = imagenet2012.get_config()
  assert config.input.pca_noise_form == "cuda_convnet"
  assert config.input.mean == "image" and config.input.use_store
  assert config.optimizer.decay_biases is False


@pytest.mark.parametrize(
  "variant,width,in_channels",
  [("small_data", 0.5, 3), ("", 0.25, 1)],
  ids=["first_recipe_90.05", "default_recipe_91.19"],
)
def test_the_fashion_mnist_recipes_keep_their_measured_values(variant, width, in_channels):
  """README's Fashion-MNIST runs were measured with these: they must not follow the ImageNet changes."""
  config = fashion_mnist.get_config(variant or None)
  assert config.optimizer.decay_biases is True
  assert (config.input.mean, config.input.pca_noise_std) == ("channel", 0.0)
  assert config.model.width == width and config.model.in_channels == in_channels
