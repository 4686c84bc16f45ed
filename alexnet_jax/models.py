"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012) as a Flax NNX module, with its two towers.

The tower split lives here. Every layer but fc8 is cut into ``towers`` slices along its output
channels; each slice's parameters are stacked on a leading tower axis (shape ``(T, ...)``) so
that a device mesh can place tower t on device t (see ``sharding.py``). The towers meet only at an
*exchange* (:func:`exchange`): before conv3 and before fc6, fc7 and fc8. Between exchanges each
tower sees only its own maps: conv2, conv4 and conv5 are "within tower", exactly the paper's
Figure 2. On one device the exchange is a concatenation; inside ``jax.shard_map`` over a mesh
axis named ``tower_axis`` it is an ``all_gather`` across the two devices.

Layer table for a 227x227 input (paper §3.5):

=====  ===========================  ===========  ============  ==========================
layer  kernels                      out          connectivity  then
=====  ===========================  ===========  ============  ==========================
conv1  96 @ 11x11, stride 4          55x55x96     input         ReLU, LRN, max-pool 3/2
conv2  256 @ 5x5, pad 2              27x27x256    within tower  ReLU, LRN, max-pool 3/2
conv3  384 @ 3x3, pad 1              13x13x384    across        ReLU
conv4  384 @ 3x3, pad 1              13x13x384    within tower  ReLU
conv5  256 @ 3x3, pad 1              13x13x256    within tower  ReLU, max-pool 3/2
fc6    4096                                       across        ReLU, dropout
fc7    4096                                       across        ReLU, dropout
fc8    num_classes                                across        (softmax in the loss)
=====  ===========================  ===========  ============  ==========================

With ``towers=2`` and 1000 classes the network has 60,965,224 parameters; ``towers=1`` is the
fully connected variant (62,378,344).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from alexnet_jax import layers

LRN_POSITIONS = ("after_relu", "before_relu")
INIT_SCHEMES = ("paper", "caffe", "he")

# (name, channels, kernel, stride, padding, within_tower, pool after it, LRN after it)
_CONV_TABLE = (
    ("conv1", 96, 11, 4, 0, False, True, True),
    ("conv2", 256, 5, 1, 2, True, True, True),
    ("conv3", 384, 3, 1, 1, False, False, False),
    ("conv4", 384, 3, 1, 1, True, False, False),
    ("conv5", 256, 3, 1, 1, True, True, False),
)
_FC_WIDTH = 4096


@dataclasses.dataclass(frozen=True)
class _Init:
  """Weight std and bias value per layer for one initialisation scheme."""

  weight_std: dict
  bias: dict


def _init_scheme(name: str) -> _Init:
  """The paper's init (§5), Caffe's bvlc_alexnet variant, or He-normal for small data.

  "paper": weights N(0, 0.01); biases 1 in conv2, conv4, conv5, fc6, fc7 and 0 elsewhere.
  "caffe": as the paper but std 0.005 in fc6/fc7 and bias 0.1 where the paper has 1
  (the paper's bias 1 gave a flat loss in Caffe).
  "he": weights N(0, 2/fan_in), all biases 0 -- trains quickly from scratch on small data.
  """
  ones = ("conv2", "conv4", "conv5", "fc6", "fc7")
  if name == "paper":
    return _Init(weight_std={}, bias={n: 1.0 for n in ones})
  if name == "caffe":
    return _Init(weight_std={"fc6": 0.005, "fc7": 0.005}, bias={n: 0.1 for n in ones})
  return _Init(weight_std={}, bias={})


class TowerConv(nnx.Module):
  """A convolution split into towers along its output channels.

  ``kernel`` has shape (T, kh, kw, in_per_tower, out/T). A within-tower layer reads only its own
  tower's input maps (``in_per_tower = in/T``); an across-tower layer reads all of them. Each
  tower runs as its own plain convolution (never a grouped one: XLA:CPU's grouped-conv gradient
  is several times slower, and the per-tower form is what a tower-sharded device runs anyway).
  """

  def __init__(self, in_features, out_features, *, towers, within_tower, kernel_size, stride,
               padding, weight_std, bias, dtype, rngs):
    fan_in_features = in_features // towers if within_tower else in_features
    shape = (towers, kernel_size, kernel_size, fan_in_features, out_features // towers)
    self.kernel = nnx.Param(_normal(rngs.params(), shape, weight_std, fan_in_features * kernel_size**2))
    self.bias = nnx.Param(jnp.full((towers, out_features // towers), bias, jnp.float32))
    self.within_tower = within_tower
    self.stride, self.padding, self.dtype = stride, padding, dtype

  def __call__(self, inputs: Sequence[jax.Array] | jax.Array) -> list[jax.Array]:
    """Maps per-tower inputs (within tower) or one full input (across) to per-tower outputs."""
    local_towers = self.kernel.shape[0]
    if not self.within_tower:
      inputs = [inputs] * local_towers
    pad = [(self.padding, self.padding)] * 2
    return [
        jax.lax.conv_general_dilated(
            x.astype(self.dtype), self.kernel[t].astype(self.dtype),
            (self.stride, self.stride), pad, dimension_numbers=("NHWC", "HWIO", "NHWC"),
        ) + self.bias[t].astype(self.dtype)
        for t, x in enumerate(inputs)
    ]


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

  def __call__(self, parts: list[jax.Array], tower_axis: str | None,
               batch_axis: str | None = None) -> list[jax.Array]:
    if self.dropout.rate == 0.0 or self.dropout.deterministic:
      return parts
    rows, width = parts[0].shape[0], parts[0].shape[-1]
    global_towers = len(parts) if tower_axis is None else jax.lax.axis_size(tower_axis)
    first = 0 if tower_axis is None else jax.lax.axis_index(tower_axis) * len(parts)
    shards = 1 if batch_axis is None else jax.lax.axis_size(batch_axis)
    full_shape = (rows * shards, *parts[0].shape[1:-1], width * global_towers)
    scaled_mask = self.dropout(jnp.ones(full_shape, parts[0].dtype))
    if batch_axis is not None:
      scaled_mask = jax.lax.dynamic_slice_in_dim(
          scaled_mask, jax.lax.axis_index(batch_axis) * rows, rows, axis=0)
    return [
        x * jax.lax.dynamic_slice_in_dim(scaled_mask, (first + t) * width, width, axis=-1)
        for t, x in enumerate(parts)
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


class AlexNet(nnx.Module):
  """AlexNet with the paper's defaults; every option below is an ablation knob.

  Args:
    num_classes: outputs of fc8.
    towers: 2 (the paper's two-GPU split) or 1 (full connectivity).
    width: multiplier on every layer's channel count (1.0 = the paper).
    input_size: side of the square input; pool5 must come out at least 1x1.
    in_channels: image channels (3; grey images are replicated to RGB by the input pipeline).
    lrn: whether conv1 and conv2 are followed by local response normalisation.
    lrn_region: "across" channels (paper) or "within" channel (spatial window).
    lrn_size, lrn_k, lrn_alpha, lrn_beta: LRN hyper-parameters (paper: 5, 2, 1e-4, 0.75).
    lrn_position: "after_relu" (the paper's text) or "before_relu" (the lecture, cuda-convnet2).
    lrn_per_tower: normalise each tower's maps on their own (the two-GPU original) rather than
      letting the channel window cross the tower boundary (Caffe's one-GPU grouped model).
    dropout_rate: dropout on fc6 and fc7 outputs (paper: 0.5).
    pool_window, pool_stride: max-pool geometry (paper: 3/2 overlapping; 2/2 is the ablation).
    init: "paper", "caffe" or "he" (see ``_init_scheme``).
    dtype: computation dtype (parameters stay float32).
    rngs: "params" stream for init, "dropout" stream for training.
  """

  def __init__(self, num_classes: int = 1000, *, towers: int = 2, width: float = 1.0,
               input_size: int = 227, in_channels: int = 3, lrn: bool = True,
               lrn_region: str = "across", lrn_size: int = 5, lrn_k: float = 2.0,
               lrn_alpha: float = 1e-4, lrn_beta: float = 0.75,
               lrn_position: str = "after_relu", lrn_per_tower: bool = True,
               dropout_rate: float = 0.5, pool_window: int = 3, pool_stride: int = 2,
               init: str = "paper", dtype=jnp.float32, rngs: nnx.Rngs | None = None):
    rngs = nnx.Rngs(0) if rngs is None else rngs
    _check_choice("towers", towers, (1, 2))
    _check_choice("lrn_position", lrn_position, LRN_POSITIONS)
    _check_choice("lrn_region", lrn_region, layers.LRN_REGIONS)
    _check_choice("init", init, INIT_SCHEMES)
    _check_range("num_classes", num_classes, "an integer >= 1", isinstance(num_classes, int) and num_classes >= 1)
    _check_range("width", width, "a number > 0", width > 0)
    _check_range("dropout_rate", dropout_rate, "in [0, 1)", 0.0 <= dropout_rate < 1.0)
    _check_range("pool_window", pool_window, "an integer >= 1", isinstance(pool_window, int) and pool_window >= 1)
    _check_range("pool_stride", pool_stride, "an integer >= 1", isinstance(pool_stride, int) and pool_stride >= 1)
    _check_range("in_channels", in_channels, "an integer >= 1", isinstance(in_channels, int) and in_channels >= 1)
    _check_range("lrn_size", lrn_size, "a positive odd integer",
                 isinstance(lrn_size, int) and lrn_size >= 1 and lrn_size % 2 == 1)
    _check_range("lrn_k", lrn_k, "a number > 0", lrn_k > 0)
    _check_range("lrn_alpha", lrn_alpha, "a number >= 0", lrn_alpha >= 0)
    _check_range("lrn_beta", lrn_beta, "a number >= 0", lrn_beta >= 0)
    self.lrn = layers.LocalResponseNorm(size=lrn_size, k=lrn_k, alpha=lrn_alpha, beta=lrn_beta,
                                        region=lrn_region) if lrn else None
    self.lrn_position, self.lrn_per_tower = lrn_position, lrn_per_tower
    self.pool_window, self.pool_stride = pool_window, pool_stride
    self.towers, self.input_size, self.num_classes = towers, input_size, num_classes
    self.feature_sizes = feature_map_sizes(input_size, pool_window, pool_stride)

    scheme = _init_scheme(init)
    std = lambda name: scheme.weight_std.get(name, 0.01) if init != "he" else None
    channels = [_scaled(c, width, towers) for _, c, *_ in _CONV_TABLE]
    self.convs = nnx.List()
    in_features = in_channels
    for (name, _, kernel, stride, pad, within, _, _), out in zip(_CONV_TABLE, channels):
      self.convs.append(TowerConv(in_features, out, towers=towers, within_tower=within,
                                  kernel_size=kernel, stride=stride, padding=pad,
                                  weight_std=std(name), bias=scheme.bias.get(name, 0.0),
                                  dtype=dtype, rngs=rngs))
      in_features = out
    fc_width = _scaled(_FC_WIDTH, width, towers)
    flat = self.feature_sizes["pool5"] ** 2 * channels[-1]
    self.fc6 = TowerDense(flat, fc_width, towers=towers, weight_std=std("fc6"),
                          bias=scheme.bias.get("fc6", 0.0), dtype=dtype, rngs=rngs)
    self.fc7 = TowerDense(fc_width, fc_width, towers=towers, weight_std=std("fc7"),
                          bias=scheme.bias.get("fc7", 0.0), dtype=dtype, rngs=rngs)
    self.fc8 = TowerDense(fc_width, num_classes, towers=1, weight_std=std("fc8"), bias=0.0,
                          dtype=dtype, rngs=rngs)
    self.dropout6 = TowerDropout(dropout_rate, rngs=rngs)
    self.dropout7 = TowerDropout(dropout_rate, rngs=rngs)

  def __call__(self, images: jax.Array, *, tower_axis: str | None = None,
               batch_axis: str | None = None) -> jax.Array:
    """Logits for NHWC float images.

    ``tower_axis`` names the mesh axis the towers are sharded over when called inside
    ``jax.shard_map``, ``batch_axis`` the one the batch is split over (for dropout masks);
    leave both None on one device or under plain ``jit`` data parallelism.
    """
    features = self.features(images, tower_axis=tower_axis)
    return self.classify(features, tower_axis=tower_axis, batch_axis=batch_axis)

  def features(self, images: jax.Array, *, tower_axis: str | None = None) -> jax.Array:
    """The convolutional half, conv1 to pool5: both towers' maps, flattened (fc6's input).

    Split from :meth:`classify` so that "one weird trick" parallelism can run the convolutions
    data-parallel and only the FC layers across towers (see ``sharding.py``).
    """
    x = images
    for (name, _, _, _, _, within, pool, lrn), conv in zip(_CONV_TABLE, self.convs):
      if not within:
        x = exchange(x, tower_axis) if isinstance(x, list) else x
      x = conv(x)
      if lrn and self.lrn is not None and self.lrn_position == "before_relu":
        x = self._normalize(x, tower_axis)
      x = [jax.nn.relu(p) for p in x]
      if lrn and self.lrn is not None and self.lrn_position == "after_relu":
        x = self._normalize(x, tower_axis)
      if pool:
        x = [layers.max_pool(p, self.pool_window, self.pool_stride) for p in x]
    flat = exchange(x, tower_axis)
    return flat.reshape(flat.shape[0], -1)

  def classify(self, features: jax.Array, *, tower_axis: str | None = None,
               batch_axis: str | None = None) -> jax.Array:
    """The fully connected half, fc6 to fc8, on flattened features from :meth:`features`."""
    x = self.fc6(features)
    x = self.dropout6([jax.nn.relu(p) for p in x], tower_axis, batch_axis)
    x = self.fc7(exchange(x, tower_axis))
    x = self.dropout7([jax.nn.relu(p) for p in x], tower_axis, batch_axis)
    (logits,) = self.fc8(exchange(x, tower_axis))
    return logits.astype(jnp.float32)

  def _normalize(self, parts: list[jax.Array], tower_axis: str | None) -> list[jax.Array]:
    """LRN per tower, or over all towers' channels with each tower keeping its own slice."""
    if self.lrn_per_tower or self.towers == 1:
      return [self.lrn(p) for p in parts]
    full = self.lrn(exchange(parts, tower_axis))
    width = parts[0].shape[-1]
    first = 0 if tower_axis is None else jax.lax.axis_index(tower_axis) * len(parts)
    return [jax.lax.dynamic_slice_in_dim(full, (first + t) * width, width, axis=-1)
            for t in range(len(parts))]


def feature_map_sizes(input_size: int, pool_window: int = 3, pool_stride: int = 2) -> dict:
  """Spatial side of every feature map for a square input; raises if pool5 would vanish."""
  sizes = _feature_map_sizes(input_size, pool_window, pool_stride)
  if min(sizes.values()) < 1:
    smallest = next(s for s in range(1, 10_000)
                    if min(_feature_map_sizes(s, pool_window, pool_stride).values()) >= 1)
    raise ValueError(
        f"AlexNet option input_size={input_size} is too small for pool {pool_window}/{pool_stride}: "
        f"feature maps would be {sizes}; pool5 must be at least 1x1, so input_size >= {smallest}")
  return sizes


def _feature_map_sizes(input_size: int, pool_window: int, pool_stride: int) -> dict:
  sizes, side = {}, input_size
  for name, _, kernel, stride, pad, _, pool, _ in _CONV_TABLE:
    side = (side + 2 * pad - kernel) // stride + 1
    sizes[name] = side
    if pool:
      side = (side - pool_window) // pool_stride + 1
      sizes["pool" + name[-1]] = side
  return sizes


def count_params(model: nnx.Module) -> int:
  """Number of scalar parameters in ``model``."""
  return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _normal(key, shape, std, fan_in):
  """N(0, std^2) weights; ``std=None`` means He-normal (std = sqrt(2 / fan_in)).

  Drawn as a flat vector and reshaped: XLA:CPU compiles the sampler for a rank-5 kernel shape
  in seconds (~2-4 s each here) but a flat one in ~0.4 s, which made building a model slow.
  """
  std = (2.0 / fan_in) ** 0.5 if std is None else std
  return std * jax.random.normal(key, (math.prod(shape),), jnp.float32).reshape(shape)


def _scaled(channels: int, width: float, towers: int) -> int:
  """Channel count times the width multiplier, rounded to a multiple of the tower count."""
  return max(towers, int(round(channels * width / towers)) * towers)


def _check_choice(name, value, allowed):
  if value not in allowed:
    raise ValueError(f"AlexNet option {name}={value!r} is not allowed; choose one of {allowed}")


def _check_range(name, value, expected, ok):
  if not ok:
    raise ValueError(f"AlexNet option {name}={value!r} is invalid; expected {expected}")
