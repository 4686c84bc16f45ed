"""The network's size and shape facts from the paper."""
import pytest
from flax import nnx

from alexnet_jax import models


@pytest.mark.parametrize("towers,expected", [(2, 60_965_224), (1, 62_378_344)])
def test_parameter_count(towers, expected):
  model = nnx.eval_shape(lambda: models.AlexNet(1000, towers=towers, rngs=nnx.Rngs(0)))
  assert models.count_params(model) == expected


def test_feature_map_sizes_227():
  sizes = models.feature_map_sizes(227)
  assert [sizes[k] for k in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")] == [
      55, 27, 27, 13, 13, 13, 13, 6]
