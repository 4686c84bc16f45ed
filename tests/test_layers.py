"""LRN against independent references: TensorFlow, PyTorch and a plain numpy loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import test_util

from alexnet_jax.model import layers

PAPER = dict(k=2.0, alpha=1e-4, beta=0.75)

# (batch, height, width, channels): fewer channels than the window, a few more, AlexNet's tower.
SHAPES = [(2, 5, 4, 3), (2, 6, 6, 7), (1, 9, 9, 48)]


def _activations(shape, seed=0, scale=60.0):
  """ReLU-scale activations large enough that alpha * sum(a^2) is comparable to k.

  With alpha=1e-4 and k=2 an activation of ~60 puts LRN in its non-linear regime;
  unit-scale inputs would be divided by a near-constant 2**0.75 and test little.
  """
  return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def _numpy_lrn(x, *, size, k, alpha, beta, region):
  """Independent reference: explicit loops over every element and its clipped window."""
  n, h, w, c = x.shape
  half = size // 2
  out = np.empty_like(x, dtype=np.float64)
  for b in range(n):
    for i in range(h):
      for j in range(w):
        for ch in range(c):
          if region == "across":
            window = x[b, i, j, max(0, ch - half) : min(c, ch + half + 1)]
          else:
            window = x[b, max(0, i - half) : min(h, i + half + 1), max(0, j - half) : min(w, j + half + 1), ch]
          total = np.sum(window.astype(np.float64) ** 2)
          out[b, i, j, ch] = x[b, i, j, ch] / (k + alpha * total) ** beta
  return out


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size", [3, 5])
def test_across_channel_matches_tensorflow(shape, size):
  tf = pytest.importorskip("tensorflow")
  x = _activations(shape)
  expected = tf.nn.local_response_normalization(
    x, depth_radius=size // 2, bias=PAPER["k"], alpha=PAPER["alpha"], beta=PAPER["beta"]
  ).numpy()
  got = layers.local_response_norm(jnp.asarray(x), size=size, **PAPER)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("size", [3, 5])
def test_across_channel_matches_pytorch(shape, size):
  torch = pytest.importorskip("torch")
  x = _activations(shape, seed=1)
  # PyTorch divides alpha by the window size; pass alpha * size for the literal formula (NCHW).
  lrn = torch.nn.LocalResponseNorm(size, alpha=PAPER["alpha"] * size, beta=PAPER["beta"], k=PAPER["k"])
  expected = lrn(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
  got = layers.local_response_norm(jnp.asarray(x), size=size, **PAPER)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_across_channel_edges_use_clipped_windows():
  """The first and last channels see only the neighbours that exist (no wrap-around)."""
  x = np.zeros((1, 1, 1, 6), np.float32)
  x[..., 0] = 100.0  # only channels 0..2 have channel 0 in their size-5 window
  got = np.asarray(layers.local_response_norm(jnp.asarray(x), size=5, **PAPER))
  expected = 100.0 / (2.0 + 1e-4 * 100.0**2) ** 0.75
  np.testing.assert_allclose(got[0, 0, 0], [expected, 0, 0, 0, 0, 0], rtol=1e-6)


@pytest.mark.parametrize("shape", [(2, 5, 4, 3), (1, 8, 7, 2)])
@pytest.mark.parametrize("size", [3, 5])
def test_within_channel_matches_numpy_loop(shape, size):
  x = _activations(shape, seed=2, scale=30.0)
  expected = _numpy_lrn(x, size=size, region="within", **PAPER)
  got = layers.local_response_norm(jnp.asarray(x), size=size, region="within", **PAPER)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_across_channel_matches_numpy_loop():
  x = _activations((2, 3, 4, 9), seed=3)
  expected = _numpy_lrn(x, size=5, region="across", **PAPER)
  np.testing.assert_allclose(layers.local_response_norm(jnp.asarray(x)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("region", ["across", "within"])
def test_gradients_match_finite_differences(region):
  # A large alpha puts unit-scale inputs in the non-linear regime; float64 keeps the
  # finite differences exact enough for check_grads' default tolerances.
  with jax.enable_x64(True):
    x = jnp.asarray(np.random.default_rng(4).standard_normal((2, 4, 3, 6)))
    assert x.dtype == jnp.float64
    lrn = lambda v: layers.local_response_norm(v, size=3, k=1.0, alpha=0.5, beta=0.75, region=region)
    # Reverse mode only: LRN has a closed-form custom VJP (no forward-mode rule).
    test_util.check_grads(lrn, (x,), order=1, modes=["rev"])


@pytest.mark.parametrize("region", ["across", "within"])
def test_gradient_under_jit_equals_eager(region):
  # Under jit the window sum must still be differentiable (its init value must stay a constant).
  x = jnp.asarray(_activations((2, 5, 5, 8), seed=6))
  loss = lambda v: jnp.sum(layers.local_response_norm(v, region=region) ** 2)
  np.testing.assert_allclose(jax.jit(jax.grad(loss))(x), jax.grad(loss)(x), rtol=1e-4, atol=1e-5)


def test_module_wraps_function():
  x = jnp.asarray(_activations((2, 4, 4, 7), seed=5))
  module = layers.LocalResponseNorm(size=3, k=1.5, alpha=2e-4, beta=0.5, region="within")
  expected = layers.local_response_norm(x, size=3, k=1.5, alpha=2e-4, beta=0.5, region="within")
  np.testing.assert_array_equal(module(x), expected)


@pytest.mark.parametrize(
  "kwargs,message",
  [
    (dict(region="x"), "region"),
    (dict(size=4), "size"),
    (dict(size=0), "size"),
    (dict(size=2.5), "size"),
  ],
)
def test_bad_arguments_raise(kwargs, message):
  x = jnp.ones((1, 2, 2, 3))
  with pytest.raises(ValueError, match=message):
    layers.local_response_norm(x, **kwargs)
  with pytest.raises(ValueError, match=message):
    layers.LocalResponseNorm(**kwargs)


def test_module_rejects_nonpositive_k():
  with pytest.raises(ValueError, match="k"):
    layers.LocalResponseNorm(k=0.0)


def test_max_pool_overlapping_geometry():
  x = jnp.arange(2 * 7 * 7 * 3, dtype=jnp.float32).reshape(2, 7, 7, 3)
  pooled = layers.max_pool(x, 3, 2)
  assert pooled.shape == (2, 3, 3, 3)
  # Values grow with the index, so each window's maximum is its bottom-right corner.
  np.testing.assert_array_equal(pooled, x[:, 2::2, 2::2, :])
