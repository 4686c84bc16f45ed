"""AlexNet's custom layers: local response normalisation (LRN) and max-pooling.

This is the one place where LRN lives. The formula is the paper's (§3.3), literally:

    b[c] = a[c] / (k + alpha * sum_{j in window(c)} a[j]**2) ** beta

``alpha`` multiplies the *plain* sum of squares over the window; the window is clipped
at the borders (no wrap-around, no division by the window size).

Mapping to other libraries (paper values size=5, k=2, alpha=1e-4, beta=0.75):

=================  ============================================================  =======================
library            call                                                          alpha to pass
=================  ============================================================  =======================
TensorFlow         ``tf.nn.local_response_normalization(x, depth_radius=size//2,   ``alpha`` (literal)
                   bias=k, alpha=alpha, beta=beta)`` (NHWC)
PyTorch            ``torch.nn.LocalResponseNorm(size, alpha=alpha*size, beta,       ``alpha * size``
                   k=k)`` (NCHW; divides alpha by ``size``)
Caffe              ``LRN {local_size: size alpha: alpha*size beta k}``;            ``alpha * size``, or
                   ``WITHIN_CHANNEL`` divides by ``size*size``                     ``alpha * size**2``
cuda-convnet2      ``[cmrnorm] size=size scale=... pow=beta minDiv=k`` (divides   ``alpha * size``
                   ``scale`` by ``size``; ``minDiv`` defaults to 1, its ImageNet
                   configs set 2)
=================  ============================================================  =======================

The alpha ambiguity: cuda-convnet2's published ImageNet config uses ``scale=1e-4``, which after its
division by ``size`` is an effective alpha of 2e-5 in the literal formula. So the paper's
``alpha=1e-4`` may be the pre-division value. This module always takes the *literal* alpha; pass
``alpha=2e-5`` to reproduce cuda-convnet2's effective normalisation.

``region="within"`` is the within-channel ("intra-channel") variant: the sum runs over a
``size x size`` spatial window of the same channel, clipped at the image borders.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from alexnet_jax import rules
from alexnet_jax.model.options import LRN_OPTIONS

# The one rule for LRN's hyper-parameters, declared with AlexNet's lrn_* options (``model/options.py``).
LRN_RULES = tuple(option.rule for option in LRN_OPTIONS)


def check_lrn_options(**options) -> None:
  """Raises ``rules.OptionError`` (a ValueError) naming every LRN option outside :data:`LRN_RULES`."""
  rules.check_options("LRN", LRN_RULES, options)


def local_response_norm(
  x: jax.Array,
  *,
  size: int = 5,
  k: float = 2.0,
  alpha: float = 1e-4,
  beta: float = 0.75,
  region: str = "across",
) -> jax.Array:
  """Local response normalisation of NHWC ``x`` with the paper's literal formula.

  Args:
    x: activations, shape (N, H, W, C).
    size: window width n (channels for "across", n x n pixels for "within"); odd.
    k, alpha, beta: the paper's hyper-parameters (see the module docstring for
      how they map onto other libraries).
    region: "across" (adjacent channels, the paper) or "within" (spatial window, same channel).
  """
  check_lrn_options(size=size, k=k, alpha=alpha, beta=beta, region=region)
  # Work in at least float32 (bfloat16 sums lose the small terms); keep float64 as is.
  normalized = _lrn(x.astype(jnp.promote_types(x.dtype, jnp.float32)), size, k, alpha, beta, region)
  return normalized.astype(x.dtype)


def _window_sum(v: jax.Array, size: int, region: str) -> jax.Array:
  """Sum over each element's LRN window; zero padding clips the window at the borders.

  The window relation is symmetric (j is in i's window iff i is in j's), so this linear map is
  its own transpose, which the backward pass below relies on. Across channels it is the sum of
  ``size`` shifted slices, which XLA:CPU fuses with the element-wise work around it (a
  ``reduce_window`` over the minor axis ran as a separate, slower loop).
  """
  half = size // 2
  if region == "across":
    channels = v.shape[-1]
    padded = jnp.pad(v, ((0, 0), (0, 0), (0, 0), (half, half)))
    return functools.reduce(jnp.add, [padded[..., offset : offset + channels] for offset in range(size)])
  window, padding = (1, size, size, 1), ((0, 0), (half, half), (half, half), (0, 0))
  # A concrete (numpy) init value keeps the sum differentiable under jit as well.
  return jax.lax.reduce_window(v, np.zeros((), v.dtype), jax.lax.add, window, (1, 1, 1, 1), padding)


def _inverse_power(z: jax.Array, beta: float) -> jax.Array:
  """``z ** -beta`` for z > 0; the paper's beta = 0.75 as ``rsqrt(z * sqrt(z))``.

  XLA:CPU evaluates ``pow`` as exp(log) per element, which dominated LRN's cost; the
  square-root form is exact to float32 rounding and several times cheaper.
  """
  if beta == 0.75:
    return jax.lax.rsqrt(z * jnp.sqrt(z))
  return jnp.power(z, -beta)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4, 5))
def _lrn(x, size, k, alpha, beta, region):
  return _lrn_fwd(x, size, k, alpha, beta, region)[0]


def _lrn_fwd(x, size, k, alpha, beta, region):
  denominator_base = k + alpha * _window_sum(jnp.square(x), size, region)
  scale = _inverse_power(denominator_base, beta)
  return x * scale, (x, denominator_base, scale)


def _lrn_bwd(size, k, alpha, beta, region, residuals, grad_out):
  """The LRN gradient in closed form, with z = k + alpha * W(x**2) and s = z**-beta:

      dx = g * s - 2 * alpha * beta * x * W(g * x * s / z)

  (W is the symmetric window sum). Autodiff reaches the same value through a chain of
  intermediate arrays (and a second power); this form is two passes and one window sum.
  """
  del k
  x, denominator_base, scale = residuals  # the forward's scale: no second power
  spread = _window_sum(grad_out * x * scale / denominator_base, size, region)
  return (grad_out * scale - (2.0 * alpha * beta) * x * spread,)


_lrn.defvjp(_lrn_fwd, _lrn_bwd)


class LocalResponseNorm(nnx.Module):
  """NNX wrapper of :func:`local_response_norm`; has no parameters."""

  def __init__(
    self,
    *,
    size: int = 5,
    k: float = 2.0,
    alpha: float = 1e-4,
    beta: float = 0.75,
    region: str = "across",
  ):
    check_lrn_options(size=size, k=k, alpha=alpha, beta=beta, region=region)
    self.size, self.k, self.alpha, self.beta, self.region = size, k, alpha, beta, region

  def __call__(self, x: jax.Array) -> jax.Array:
    return local_response_norm(x, size=self.size, k=self.k, alpha=self.alpha, beta=self.beta, region=self.region)


def max_pool(x: jax.Array, window: int = 3, stride: int = 2) -> jax.Array:
  """VALID max-pooling of NHWC ``x``; window 3 / stride 2 is the paper's overlapping pool.

  Same values and gradient as ``lax.reduce_window`` with ``lax.max`` (whose gradient is XLA's
  ``select_and_scatter``), computed as the maximum of the ``window**2`` strided slices of ``x``.
  XLA:CPU runs ``select_and_scatter`` as a slow scalar loop; the slices are plain element-wise
  work that fuses. Ties follow XLA's rule: the first maximum in the window (row-major) gets the
  whole gradient. See :func:`_strided_max_pool_bwd`.
  """
  return _strided_max_pool(x, window, stride)


def _window_slices(x: jax.Array, window: int, stride: int) -> list[jax.Array]:
  """The ``window**2`` strided views of NHWC ``x``, row-major in the window; each is pool-shaped."""
  out_h = (x.shape[1] - window) // stride + 1
  out_w = (x.shape[2] - window) // stride + 1
  if out_h < 1 or out_w < 1:
    raise ValueError(f"max_pool window {window} is larger than the input {x.shape[1:3]}")
  return [
    x[:, i : i + stride * (out_h - 1) + 1 : stride, j : j + stride * (out_w - 1) + 1 : stride, :]
    for i in range(window)
    for j in range(window)
  ]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _strided_max_pool(x: jax.Array, window: int, stride: int) -> jax.Array:
  return functools.reduce(jnp.maximum, _window_slices(x, window, stride))


def _strided_max_pool_fwd(x, window, stride):
  out = _strided_max_pool(x, window, stride)
  return out, (x, out)


def _strided_max_pool_bwd(window, stride, residuals, grad_out):
  """Routes each output's gradient to the first input in its window that equals the maximum.

  Window offset (i, j) "wins" an output where its slice holds the maximum and no earlier offset
  did. The input gradient is built per stride phase: input row ``stride * a + p`` is reached only
  by offsets ``i = p + stride * k`` (from output row ``a - k``), so each of the ``stride**2``
  phases is a sum of shifted, output-sized arrays, and one reshape interleaves the phases. Every
  step is element-wise on small arrays; scattering each offset onto the full input grid instead
  (``lax.pad`` with interior padding) made XLA:CPU write ``window**2`` full-size arrays and cost
  ~25 % of the Fashion-MNIST train step.
  """
  x, out = residuals
  batch, height, width, channels = x.shape
  out_h, out_w = out.shape[1:3]
  phase_h, phase_w = -(-height // stride), -(-width // stride)
  zero = jnp.zeros((), grad_out.dtype)
  unclaimed = jnp.ones(out.shape, bool)
  phases = [[jnp.zeros((batch, phase_h, phase_w, channels), grad_out.dtype)] * stride for _ in range(stride)]
  for index, piece in enumerate(_window_slices(x, window, stride)):
    i, j = divmod(index, window)
    winner = unclaimed & (piece == out)
    unclaimed = unclaimed & ~winner
    (row_shift, row_phase), (col_shift, col_phase) = divmod(i, stride), divmod(j, stride)
    shift = (
      (0, 0, 0),
      (row_shift, phase_h - row_shift - out_h, 0),
      (col_shift, phase_w - col_shift - out_w, 0),
      (0, 0, 0),
    )
    phases[row_phase][col_phase] = phases[row_phase][col_phase] + jax.lax.pad(
      jnp.where(winner, grad_out, zero), zero, shift
    )
  # (batch, phase_h, stride, phase_w, stride, channels): row stride * a + p is phases[p][.][a].
  interleaved = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)
  grad_x = interleaved.reshape(batch, phase_h * stride, phase_w * stride, channels)[:, :height, :width, :]
  return (grad_x,)


_strided_max_pool.defvjp(_strided_max_pool_fwd, _strided_max_pool_bwd)


def adaptive_avg_pool(x: jax.Array, size: int) -> jax.Array:
  """PyTorch's ``AdaptiveAvgPool2d(size)`` on NHWC ``x``: output cell i averages input rows
  ``floor(i * H / size)`` to ``ceil((i + 1) * H / size) - 1`` (and likewise columns). A map already of
  ``size`` x ``size`` is returned as it is (torchvision's AlexNet at 224 pixels: pool5 is 6x6)."""
  height, width = x.shape[1:3]
  if (height, width) == (size, size):
    return x
  rows, columns = _averaging_matrix(height, size), _averaging_matrix(width, size)
  return jnp.einsum("oh,nhwc,pw->nopc", jnp.asarray(rows, x.dtype), x, jnp.asarray(columns, x.dtype))


def _averaging_matrix(length: int, size: int) -> np.ndarray:
  """(size, length): row i holds 1/n over the n inputs that output cell i averages."""
  matrix = np.zeros((size, length), np.float32)
  for i in range(size):
    start, end = (i * length) // size, -(-((i + 1) * length) // size)
    matrix[i, start:end] = 1.0 / (end - start)
  return matrix
