"""The ImageNet config does what the paper (Krizhevsky et al. 2012, §3-§5) and the authors' code do:
checked on what the config builds -- the model's LRN and initial weights, an optimizer update, the
colour noise on a store's eigen-pairs -- not by retyping its numbers (the recipes' numbers side by
side: docs/paper_and_references.md, computed from the configs)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from alexnet_jax.data import augment, input_spec
from alexnet_jax.train import optimizers, validation
from alexnet_jax.train import state as train_state
from experiments import imagenet2012

CONV_NAMES = ("conv1", "conv2", "conv3", "conv4", "conv5")


def _layers(params) -> dict:
  """{layer name: {"kernel": array, "bias": array}} of an AlexNet parameter tree."""
  named = {name: params["convs"][index] for index, name in enumerate(CONV_NAMES)}
  named |= {name: params[name] for name in ("fc6", "fc7", "fc8")}
  return {name: {leaf: np.asarray(layer[leaf][...]) for leaf in ("kernel", "bias")} for name, layer in named.items()}


def _built(config):
  model = train_state.create_model(config, nnx.Rngs(0))
  return model, nnx.split(model, nnx.Param, ...)[1]


def test_the_imagenet_config_and_its_smoke_variant_validate():
  validation.validate(imagenet2012.get_config(), device_count=1)
  validation.validate(imagenet2012.get_config("smoke"), device_count=1)


@pytest.mark.parametrize(
  "variant,weight_std,bias_value",
  [
    (None, {}, 1.0),
    ("caffe", {"fc6": 0.005, "fc7": 0.005}, 0.1),
    ("cuda_convnet2", {"conv3": 0.03, "conv4": 0.03, "conv5": 0.03}, 1.0),
  ],
  ids=["paper", "caffe", "cuda_convnet2"],
)
def test_a_built_model_starts_from_the_recipes_initial_weights(variant, weight_std, bias_value):
  """§5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6 and fc7, 0 in the others.
  Caffe's bvlc_alexnet: std 0.005 in fc6/fc7 and 0.1 where the paper has 1; cuda-convnet2's two-tower
  layer-params file: initW=0.03 in conv3-conv5."""
  config = imagenet2012.get_config(":".join(name for name in (variant, "smoke") if name))
  _, params = _built(config)
  for name, layer in _layers(params).items():
    kernel, bias = layer["kernel"], layer["bias"]
    assert abs(kernel.mean()) < 0.1 * weight_std.get(name, 0.01), name
    assert kernel.std() == pytest.approx(weight_std.get(name, 0.01), rel=0.05), name
    want_bias = bias_value if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
    np.testing.assert_array_equal(bias, np.float32(want_bias), err_msg=name)


def _literal_lrn(a, size=5, k=2.0, alpha=1e-4, beta=0.75):
  """§3.3: b = a / (k + alpha * sum_j a_j^2)^beta over the n adjacent channels, clipped at the edges."""
  channels, half = a.shape[-1], size // 2
  out = np.empty_like(a, np.float64)
  for c in range(channels):
    window = a[..., max(0, c - half) : min(channels, c + half + 1)].astype(np.float64)
    out[..., c] = a[..., c] / (k + alpha * (window**2).sum(-1)) ** beta
  return out


def test_the_imagenet_models_lrn_is_the_papers_formula_within_each_tower():
  """The built model's normalisation of two towers' maps: the paper's formula, each tower on its own
  (each GPU normalised its own maps); Caffe's variant lets the window cross the tower boundary."""
  rng = np.random.default_rng(0)
  towers = [np.abs(rng.normal(0, 40, (2, 3, 3, 6))).astype(np.float32) for _ in range(2)]
  paper, _ = _built(imagenet2012.get_config("smoke"))
  got = [np.asarray(part) for part in paper._normalize([jnp.asarray(t) for t in towers], None)]
  for tower, normalised in zip(towers, got):
    np.testing.assert_allclose(normalised, _literal_lrn(tower), rtol=1e-5)
  caffe, _ = _built(imagenet2012.get_config("caffe:smoke"))
  across = np.concatenate([np.asarray(p) for p in caffe._normalize([jnp.asarray(t) for t in towers], None)], -1)
  np.testing.assert_allclose(across, _literal_lrn(np.concatenate(towers, -1), k=1.0, alpha=2e-5), rtol=1e-5)


def _cuda_convnet2_rnorm(a, size=5, scale=0.001, pow_=0.75, min_div=1.0):
  """cuda-convnet2's ``rnorm`` as its layer.py and kernels define it: each map divided by (minDiv + scale /
  size**2 * sum of squares over the size x size window of the same map, clipped at the borders) ** pow."""
  height, width, half = a.shape[1], a.shape[2], size // 2
  out = np.empty_like(a, np.float64)
  for y in range(height):
    for x in range(width):
      window = a[:, max(0, y - half) : y + half + 1, max(0, x - half) : x + half + 1].astype(np.float64)
      out[:, y, x] = a[:, y, x] / (min_div + scale / size**2 * (window**2).sum((1, 2))) ** pow_
  return out


def test_the_cuda_convnet2_model_normalises_conv1_before_its_relu_and_conv2_after_it_then_cnorm2():
  """layers-imagenet-2gpu-model.cfg: conv1 -> rnorm1 -> ReLU (on pool1); conv2 -> ReLU -> rnorm2 -> cnorm2;
  each tower on its own. The literal formulas, on maps with negative values so that the orders differ."""
  rng = np.random.default_rng(5)
  towers = [rng.normal(0, 40, (2, 6, 6, 6)).astype(np.float32) for _ in range(2)]
  model, _ = _built(imagenet2012.get_config("cuda_convnet2:smoke"))
  relu = lambda a: np.maximum(a, 0)  # noqa: E731
  rnorm = lambda a: _literal_lrn(a, k=2.0, alpha=1e-4 / 5)  # noqa: E731 -- scale=0.0001 / size, minDiv=2
  want = {
    "conv1": [relu(rnorm(t)) for t in towers],
    "conv2": [_cuda_convnet2_rnorm(rnorm(relu(t))) for t in towers],
  }
  for name, wanted in want.items():
    got = model._activate(name, [jnp.asarray(t) for t in towers], None)
    for tower, normalised in zip(wanted, got):
      np.testing.assert_allclose(np.asarray(normalised), tower, rtol=1e-5, atol=1e-6, err_msg=name)
  assert not np.allclose(want["conv1"][0], rnorm(relu(towers[0])), rtol=1e-3)  # the orders differ here


def test_the_papers_update_decays_the_weights_and_not_the_biases():
  """One update of the configured rule with zero gradients: every kernel shrinks by eps * wd, no bias
  moves (cuda-convnet2 sets wc on weights only, Caffe decay_mult 0 on biases)."""
  config = imagenet2012.get_config("smoke")
  _, params = _built(config)
  tx = optimizers.create_optimizer(config)
  eps = config.optimizer.learning_rate
  updates, _ = tx.update(
    jax.tree.map(jnp.zeros_like, params), optimizers.set_learning_rate(tx.init(params), eps), params
  )
  after = _layers(optax.apply_updates(params, updates))
  for name, layer in _layers(params).items():
    np.testing.assert_allclose(after[name]["kernel"], layer["kernel"] * (1 - eps * 5e-4), rtol=1e-6, err_msg=name)
    np.testing.assert_array_equal(after[name]["bias"], layer["bias"], err_msg=name)


def test_the_colour_noise_moves_pixels_by_a_tenth_of_each_components_std_on_the_stores_eigen_pairs():
  """The authors' form on a store's own statistics: alpha_i ~ N(0, 0.1) times sigma_i = sqrt(eigenvalue_i)
  along eigenvector i (cuda-convnet2's randn * 0.1 * sigma_i)."""
  config = imagenet2012.get_config()
  eigenvalues = np.array([0.04, 0.01, 0.0025])
  eigenvectors, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
  stats = {"eigenvalues": eigenvalues, "eigenvectors": eigenvectors, "mean_image": np.zeros((8, 8, 3), np.float32)}
  constants = input_spec.pixel_constants(config, stats)

  class Spec:
    resize_size, crop_size, random_crop, random_flip = 8, 8, False, False
    pca_noise_std = config.input.pca_noise_std

  draws = augment.train_draws(augment.step_key(0, 0), 40_000, Spec)
  shifts = np.asarray(augment.colour_shift(draws["alpha"], constants["eigenvectors"], constants["scales"]))
  along = shifts @ eigenvectors  # each shift's component along each eigenvector
  np.testing.assert_allclose(along.std(axis=0), 0.1 * np.sqrt(eigenvalues), rtol=0.03)
