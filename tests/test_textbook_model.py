"""The benchmark's textbook "before" computes the same network as alexnet.AlexNet."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from alexnet_jax.model import alexnet
from alexnet_jax.model.alexnet import LAYER_NAMES
from alexnet_jax.yardsticks.textbook import TextbookAlexNet, copy_params, merge_towers

pytestmark = pytest.mark.slow  # the benchmark's baseline, not the product: in the full suite only


@pytest.fixture(scope="module", params=[2, 1], ids=["two_towers", "one_tower"])
def pair(request):
  """A alexnet.AlexNet with random kernels and biases, its copy as a TextbookAlexNet, and a batch."""
  towers = request.param
  source = alexnet.AlexNet(10, towers=towers, input_size=67, init="he", rngs=nnx.Rngs(0))
  # Random biases too (He init has zeros), so a mis-ordered bias copy shows.
  rng = np.random.default_rng(towers)
  for layer in (*source.convs, source.fc6, source.fc7, source.fc8):
    layer.bias[...] = jnp.asarray(rng.standard_normal(layer.bias.shape, np.float32))
  target = TextbookAlexNet(10, towers=towers, input_size=67, rngs=nnx.Rngs(1))
  copy_params(source, target)
  source.eval()
  target.eval()
  images = jnp.asarray(50.0 * rng.standard_normal((2, 67, 67, 3), np.float32))
  return source, target, images


def _loss(model, images):
  labels = jnp.array([3, 7])
  return optax.softmax_cross_entropy_with_integer_labels(model(images), labels).mean()


def test_textbook_logits_match_the_model(pair):
  source, target, images = pair
  expected, got = np.asarray(source(images)), np.asarray(target(images))
  assert got.shape == expected.shape == (2, 10)
  assert np.abs(expected).max() > 1.0  # a live signal through all eight layers
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_textbook_gradients_match_the_model(pair):
  source, target, images = pair
  grad = nnx.jit(nnx.grad(_loss))  # jitted, as in the benchmark's train step
  source_grads, target_grads = grad(source, images), grad(target, images)
  source_layers = dict(
    zip(LAYER_NAMES, (*source_grads["convs"].values(), source_grads["fc6"], source_grads["fc7"], source_grads["fc8"]))
  )
  for name in LAYER_NAMES:
    for param in ("kernel", "bias"):
      expected = np.asarray(merge_towers(source_layers[name][param][...]))
      got = np.asarray(target_grads[name][param][...])
      assert np.abs(expected).max() > 0, (name, param)
      np.testing.assert_allclose(
        got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max(), err_msg=f"{name}.{param}"
      )
