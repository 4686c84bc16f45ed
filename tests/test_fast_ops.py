"""Parity of the fast custom ops against the plain XLA formulations they replace."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alexnet_jax import xla_flags
from alexnet_jax.model import layers


def reference_max_pool(x, window, stride):
  """The textbook max-pool; its gradient is XLA's select_and_scatter."""
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, window, window, 1), (1, stride, stride, 1), "VALID")


def reference_lrn(x, size=5, k=2.0, alpha=1e-4, beta=0.75):
  """Cross-channel LRN written with pow, straight from the paper's formula, in numpy."""
  x = np.asarray(x, np.float64)
  half, channels = size // 2, x.shape[-1]
  sums = np.stack([np.sum(x[..., max(0, c - half) : c + half + 1] ** 2, axis=-1) for c in range(channels)], axis=-1)
  return x / (k + alpha * sums) ** beta


def _value_and_vjp(fn, x, cotangent):
  out, vjp = jax.vjp(fn, x)
  return np.asarray(out), np.asarray(vjp(cotangent)[0])


# (window, stride, height, width): the paper's overlapping 3/2 at AlexNet's odd sides and an
# even one (a right/bottom remainder the pool skips), the non-overlapping 2/2 ablation, and
# stride > window (inputs no window covers get zero gradient), and stride 1 (three offsets per phase).
GEOMETRIES = [
  (3, 2, 13, 13),
  (3, 2, 14, 15),
  (3, 2, 27, 27),
  (2, 2, 12, 12),
  (2, 2, 13, 11),
  (2, 3, 11, 11),
  (3, 1, 7, 8),
]


@pytest.mark.parametrize("window,stride,height,width", GEOMETRIES)
@pytest.mark.parametrize("values", ["distinct", "ties", "constant"])
def test_max_pool_matches_reduce_window_value_and_gradient(window, stride, height, width, values):
  rng = np.random.default_rng(window * 100 + stride * 10 + height)
  x = rng.standard_normal((2, height, width, 3)).astype(np.float32)
  if values == "ties":
    x = np.round(x)  # Many equal maxima per window, as after a ReLU.
  elif values == "constant":
    x = np.zeros_like(x)  # Every window is one big tie.
  out_shape = reference_max_pool(x, window, stride).shape
  cotangent = rng.standard_normal(out_shape).astype(np.float32)

  fast_out, fast_grad = _value_and_vjp(lambda v: layers.max_pool(v, window, stride), x, cotangent)
  ref_out, ref_grad = _value_and_vjp(lambda v: reference_max_pool(v, window, stride), x, cotangent)

  np.testing.assert_array_equal(fast_out, ref_out)
  # Same routing; only the order of summing overlapping windows' gradients may differ.
  np.testing.assert_allclose(fast_grad, ref_grad, rtol=1e-6, atol=1e-6)


def test_max_pool_ties_go_to_the_first_maximum_in_the_window():
  x = np.zeros((1, 3, 3, 1), np.float32)  # One 3x3 window, all tied.
  grad = jax.grad(lambda v: layers.max_pool(v, 3, 2).sum())(x)
  expected = np.zeros_like(x)
  expected[0, 0, 0, 0] = 1.0
  np.testing.assert_array_equal(grad, expected)


def test_max_pool_under_jit_and_bfloat16_keeps_dtype_and_values():
  x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 55, 55, 4)), jnp.bfloat16)
  fast = jax.jit(layers.max_pool)(x)
  assert fast.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(fast, np.float32), np.asarray(reference_max_pool(x, 3, 2), np.float32))


def test_max_pool_rejects_a_window_larger_than_the_input():
  with pytest.raises(ValueError, match="window 3 is larger than the input"):
    layers.max_pool(jnp.zeros((1, 2, 2, 1)), 3, 2)


@pytest.mark.parametrize("beta", [0.75, 0.5])
def test_lrn_matches_the_formula_and_its_finite_difference_gradient(beta):
  rng = np.random.default_rng(2)
  x = np.maximum(0, 3 * rng.standard_normal((2, 5, 5, 12))).astype(np.float32)
  out = layers.local_response_norm(x, beta=beta)
  np.testing.assert_allclose(out, reference_lrn(x, beta=beta), rtol=2e-6, atol=1e-7)

  # Gradient against float64 finite differences of the numpy formula, on a few coordinates.
  cotangent = rng.standard_normal(x.shape)
  grad = jax.grad(lambda v: jnp.sum(layers.local_response_norm(v, beta=beta) * cotangent))(x)
  for index in [(0, 0, 0, 0), (1, 2, 3, 5), (0, 4, 4, 11), (1, 1, 2, 6)]:
    step = np.zeros_like(x, np.float64)
    step[index] = 1e-4
    numeric = np.sum((reference_lrn(x + step, beta=beta) - reference_lrn(x - step, beta=beta)) * cotangent) / 2e-4
    np.testing.assert_allclose(grad[index], numeric, rtol=1e-3, atol=1e-5)


def autodiff_lrn(x, size, k, alpha, beta, region):
  """LRN as plain jnp ops (reduce_window + pow), differentiated by JAX itself."""
  half = size // 2
  if region == "across":
    window, padding = (1, 1, 1, size), ((0, 0), (0, 0), (0, 0), (half, half))
  else:
    window, padding = (1, size, size, 1), ((0, 0), (half, half), (half, half), (0, 0))
  sums = jax.lax.reduce_window(jnp.square(x), 0.0, jax.lax.add, window, (1, 1, 1, 1), padding)
  return x * jnp.power(k + alpha * sums, -beta)


@pytest.mark.parametrize("region", ["across", "within"])
@pytest.mark.parametrize("size,k,alpha,beta", [(5, 2.0, 1e-4, 0.75), (3, 1.0, 0.05, 0.75), (5, 1.0, 2e-3, 0.6)])
def test_lrn_custom_gradient_equals_autodiff_of_the_plain_formula(region, size, k, alpha, beta):
  rng = np.random.default_rng(size)
  # Large activations so alpha * sum(a^2) is comparable to k and the cross terms matter.
  x = jnp.asarray(np.maximum(0, 20 * rng.standard_normal((2, 7, 6, 16))), jnp.float32)
  cotangent = jnp.asarray(rng.standard_normal(x.shape), jnp.float32)
  kwargs = dict(size=size, k=k, alpha=alpha, beta=beta, region=region)
  fast_out, fast_vjp = jax.vjp(lambda v: layers.local_response_norm(v, **kwargs), x)
  ref_out, ref_vjp = jax.vjp(lambda v: autodiff_lrn(v, size, k, alpha, beta, region), x)
  np.testing.assert_allclose(fast_out, ref_out, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(fast_vjp(cotangent)[0], ref_vjp(cotangent)[0], rtol=1e-4, atol=1e-5)


def test_lrn_bfloat16_input_keeps_dtype_and_differentiates():
  x = jnp.asarray(np.random.default_rng(3).standard_normal((1, 4, 4, 8)), jnp.bfloat16)
  out, vjp = jax.vjp(layers.local_response_norm, x)
  assert out.dtype == jnp.bfloat16 and vjp(jnp.ones_like(out))[0].dtype == jnp.bfloat16


def test_xla_flags_only_added_when_the_user_has_not_set_them():
  name = "--xla_cpu_experimental_ynn_fusion_type"
  assert xla_flags.cpu_flags_to_add("", (0, 10)) == [f"{name}=-individual_convolution"]
  assert xla_flags.cpu_flags_to_add(f"{name}=individual_convolution", (0, 10)) == []
  # Unknown XLA flags abort the process, so unverified jaxlib versions get nothing.
  assert xla_flags.cpu_flags_to_add("", (0, 9)) == []
  assert xla_flags.cpu_flags_to_add("", None) == []
