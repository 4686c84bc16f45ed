"""The tower split (the paper's Figure 2): layers cut into towers, and the exchange where they meet.

Every AlexNet layer but fc8 is cut into ``towers`` slices along its output channels; each slice's
parameters are stacked on a leading tower axis (shape ``(T, ...)``) so that a device mesh can place
tower t on device t (see ``alexnet_jax/parallel/sharding.py``). The towers meet only at an
*exchange* (:func:`exchange`). Between exchanges each tower sees only its own maps. On one device
the exchange is a concatenation; inside ``jax.shard_map`` over a mesh axis named ``tower_axis`` it
is an ``all_gather`` across the devices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


class TowerConv(nnx.Module):
  """A convolution split into towers along its output channels.

  ``kernel`` has shape (T, kh, kw, in_per_tower, out/T). A within-tower layer reads only its own
  tower's input maps (``in_per_tower = in/T``); an across-tower layer reads all of them. A
  within-tower layer runs each tower as its own plain convolution (never a grouped one: XLA:CPU's
  grouped-conv gradient is several times slower, and the per-tower form is what a tower-sharded
  device runs anyway).
  """

  def __init__(
    self,
    in_features,
    out_features,
    *,
    towers,
    within_tower,
    kernel_size,
    stride,
    padding,
    weight_std,
    bias,
    dtype,
    rngs,
  ):
    fan_in_features = in_features // towers if within_tower else in_features
    shape = (towers, kernel_size, kernel_size, fan_in_features, out_features // towers)
    self.kernel = nnx.Param(_normal(rngs.params(), shape, weight_std, fan_in_features * kernel_size**2))
    self.bias = nnx.Param(jnp.full((towers, out_features // towers), bias, jnp.float32))
    self.within_tower = within_tower
    self.stride, self.padding, self.dtype = stride, padding, dtype

  def __call__(self, inputs: Sequence[jax.Array] | jax.Array) -> list[jax.Array]:
    """Maps per-tower inputs (within tower) or one full input (across) to per-tower outputs.

    An across-tower layer is one convolution with the local towers' kernels side by side, its
    output cut back into towers: the same sums, but XLA:CPU runs one wide convolution (and one
    input gradient) faster than a narrow one per tower.
    """
    local_towers, out_per_tower = self.kernel.shape[0], self.kernel.shape[-1]
    if self.within_tower:
      return [self._convolve(x, self.kernel[t]) + self.bias[t].astype(self.dtype) for t, x in enumerate(inputs)]
    side_by_side = jnp.concatenate([self.kernel[t] for t in range(local_towers)], axis=-1)
    joined = self._convolve(inputs, side_by_side) + self.bias[...].reshape(-1).astype(self.dtype)
    return [joined[..., t * out_per_tower : (t + 1) * out_per_tower] for t in range(local_towers)]

  def _convolve(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
    pad = [(self.padding, self.padding)] * 2
    return jax.lax.conv_general_dilated(
      x.astype(self.dtype),
      kernel.astype(self.dtype),
      (self.stride, self.stride),
      pad,
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )


class TowerDense(nnx.Module):
  """A fully connected layer split into towers along its outputs; every tower reads all inputs."""

  def __init__(self, in_features, out_features, *, towers, weight_std, bias, dtype, rngs):
    shape = (towers, in_features, out_features // towers)
    self.kernel = nnx.Param(_normal(rngs.params(), shape, weight_std, in_features))
    self.bias = nnx.Param(jnp.full((towers, out_features // towers), bias, jnp.float32))
    self.dtype = dtype

  def __call__(self, x: jax.Array) -> list[jax.Array]:
    """All towers in one batched matmul over the tower axis; returns one output per tower.

    Slicing ``kernel[t]`` would make XLA:CPU copy each tower's weights (75 MB per fc6 tower)
    before every matmul; broadcasting the small input over the tower axis instead lets the
    stacked kernel feed a batched dot as it is.
    """
    towers = self.kernel.shape[0]
    x = jnp.broadcast_to(x.astype(self.dtype), (towers, *x.shape))
    y = jnp.einsum("tbi,tio->tbo", x, self.kernel.astype(self.dtype))
    y = y + self.bias[:, None, :].astype(self.dtype)
    return list(y)


class TowerDropout(nnx.Module):
  """Dropout on tower-split features with one mask drawn for the full width.

  Each tower keeps its own slice of the mask, so one device and a tower-sharded pair of
  devices drop exactly the same units for the same key. Likewise, when the batch is split over
  a mesh axis (``batch_axis``, inside ``shard_map``), the mask is drawn for the global batch and
  each shard keeps its own rows: the same mask as on one device, not one mask repeated per shard.
  """

  def __init__(self, rate: float, *, rngs: nnx.Rngs):
    self.dropout = nnx.Dropout(rate, rngs=rngs)

  def __call__(self, parts: list[jax.Array], tower_axis: str | None, batch_axis: str | None = None) -> list[jax.Array]:
    if self.dropout.rate == 0.0 or self.dropout.deterministic:
      return parts
    rows, width = parts[0].shape[0], parts[0].shape[-1]
    global_towers = len(parts) if tower_axis is None else jax.lax.axis_size(tower_axis)
    first = 0 if tower_axis is None else jax.lax.axis_index(tower_axis) * len(parts)
    shards = 1 if batch_axis is None else jax.lax.axis_size(batch_axis)
    full_shape = (rows * shards, *parts[0].shape[1:-1], width * global_towers)
    scaled_mask = self.dropout(jnp.ones(full_shape, parts[0].dtype))
    if batch_axis is not None:
      scaled_mask = jax.lax.dynamic_slice_in_dim(scaled_mask, jax.lax.axis_index(batch_axis) * rows, rows, axis=0)
    return [
      x * jax.lax.dynamic_slice_in_dim(scaled_mask, (first + t) * width, width, axis=-1) for t, x in enumerate(parts)
    ]


def exchange(parts: Sequence[jax.Array], tower_axis: str | None) -> jax.Array:
  """Where the towers meet: all towers' channels, concatenated in tower order.

  On one device the towers are all local and this is a concatenation; inside ``shard_map``
  each device holds its own tower and the concatenation happens across devices.
  """
  x = jnp.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
  if tower_axis is None:
    return x
  return jax.lax.all_gather(x, tower_axis, axis=x.ndim - 1, tiled=True)


def _normal(key, shape, std, fan_in):
  """N(0, std^2) weights; ``std=None`` means He-normal (std = sqrt(2 / fan_in)).

  Drawn as a flat vector and reshaped: XLA:CPU compiles the sampler for a rank-5 kernel shape
  in seconds (~2-4 s each here) but a flat one in ~0.4 s, which made building a model slow.
  """
  std = (2.0 / fan_in) ** 0.5 if std is None else std
  return std * jax.random.normal(key, (math.prod(shape),), jnp.float32).reshape(shape)
