"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012) as a Flax NNX module, built from one layer table.

:data:`CONV_LAYERS` is the paper's layer table (§3.5) as named rows; the model, the FLOP count, the
textbook and PyTorch yardsticks and the tests all read it. For a 227x227 input:

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

The tower split itself (tower layers and the exchange) is in ``towers.py``, LRN and max-pooling in
``layers.py``. With ``towers=2`` and 1000 classes the network has 60,965,224 parameters;
``towers=1`` is the fully connected variant (62,378,344). The options ``channels``, ``fc_width``,
``conv1_padding`` and ``adaptive_pool`` change the table's counts and what stands between pool5 and
fc6, so that the same class holds torchvision's 2014 net (64-192-384-256-256, conv1 padding 2, no LRN,
an adaptive 6x6 average pool, one tower: 61,100,840 parameters) for imported weights.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from alexnet_jax.model import layers, options
from alexnet_jax.model.towers import TowerConv, TowerDense, TowerDropout, exchange


@dataclasses.dataclass(frozen=True)
class ConvLayer:
  """One row of the paper's convolution table."""

  name: str
  channels: int
  kernel: int
  stride: int
  padding: int
  within_tower: bool  # reads only its own tower's maps (conv2, conv4, conv5)
  pool: bool  # followed by max-pooling
  lrn: bool  # followed by local response normalisation


CONV_LAYERS = (
  ConvLayer("conv1", 96, 11, 4, 0, within_tower=False, pool=True, lrn=True),
  ConvLayer("conv2", 256, 5, 1, 2, within_tower=True, pool=True, lrn=True),
  ConvLayer("conv3", 384, 3, 1, 1, within_tower=False, pool=False, lrn=False),
  ConvLayer("conv4", 384, 3, 1, 1, within_tower=True, pool=False, lrn=False),
  ConvLayer("conv5", 256, 3, 1, 1, within_tower=True, pool=True, lrn=False),
)
FC_WIDTH = 4096  # fc6 and fc7
LAYER_NAMES = (*(layer.name for layer in CONV_LAYERS), "fc6", "fc7", "fc8")


def param_path(key_path) -> tuple[str, ...]:
  """A parameter's tree path as strings (``("convs", "0", "kernel", "value")``), the same for an
  ``nnx.State`` and for the nested dicts a checkpoint reads back as."""
  return tuple(str(getattr(key, "key", getattr(key, "name", key))) for key in key_path)


def layer_name(path: tuple[str, ...]) -> str:
  """The layer of :data:`LAYER_NAMES` that holds the parameter at ``path`` (:func:`param_path`):
  ``AlexNet.convs[i]`` is conv(i+1), the dense layers are named as they are."""
  return CONV_LAYERS[int(path[1])].name if path[0] == "convs" else path[0]


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
  "cuda_convnet2": as the paper but std 0.03 in conv3-conv5 (layer-params-imagenet-2gpu-model.cfg
  ``initW=0.03``).
  "he": weights N(0, 2/fan_in), all biases 0 -- trains quickly from scratch on small data.
  """
  ones = ("conv2", "conv4", "conv5", "fc6", "fc7")
  if name == "paper":
    return _Init(weight_std={}, bias={n: 1.0 for n in ones})
  if name == "cuda_convnet2":
    return _Init(weight_std={n: 0.03 for n in ("conv3", "conv4", "conv5")}, bias={n: 1.0 for n in ones})
  if name == "caffe":
    return _Init(weight_std={"fc6": 0.005, "fc7": 0.005}, bias={n: 0.1 for n in ones})
  return _Init(weight_std={}, bias={})


class AlexNet(nnx.Module):
  """AlexNet with the paper's defaults; every option is an ablation knob.

  Args:
    num_classes: outputs of fc8 (the one option that may be given by position).
    rngs: "params" stream for init, "dropout" stream for training.
    **kwargs: the other options of ``model/options.py`` by name (``towers=1``, ``lrn=False``,
      ``dtype="bfloat16"``, ...); :data:`options.OPTIONS` says what each means and allows. An option
      left out takes the paper's value, a value its rule refuses raises ``rules.OptionError`` (a
      ValueError), an input too small for the layer stack a ValueError, an unknown option a TypeError.
  """

  def __init__(self, num_classes: int = options.defaults()["num_classes"], *, rngs: nnx.Rngs | None = None, **kwargs):
    rngs = nnx.Rngs(0) if rngs is None else rngs
    opt = options.ModelOptions(num_classes=num_classes, **kwargs)
    self.feature_sizes = feature_map_sizes(opt.input_size, opt.pool_window, opt.pool_stride, opt.conv1_padding)
    self.lrn = (
      layers.LocalResponseNorm(
        size=opt.lrn_size, k=opt.lrn_k, alpha=opt.lrn_alpha, beta=opt.lrn_beta, region=opt.lrn_region
      )
      if opt.lrn
      else None
    )
    # Each LRN layer's position (conv1's, conv2's), and cuda-convnet2's extra cnorm2 after conv2's.
    normalized = (layer.name for layer in CONV_LAYERS if layer.lrn)
    self.lrn_positions = dict(zip(normalized, options.lrn_positions(opt.lrn_position)))
    self.cnorm2 = layers.LocalResponseNorm(**options.CNORM2) if opt.cnorm2 else None
    self.lrn_per_tower = opt.lrn_per_tower
    self.pool_window, self.pool_stride = opt.pool_window, opt.pool_stride
    self.towers, self.input_size, self.num_classes = opt.towers, opt.input_size, opt.num_classes
    towers, width, init, dtype = opt.towers, opt.width, opt.init, jnp.dtype(opt.dtype)

    scheme = _init_scheme(init)
    std = lambda name: scheme.weight_std.get(name, 0.01) if init != "he" else None
    self.conv_layers = conv_layers(opt.channels, opt.conv1_padding)
    channels = [scaled_channels(layer.channels, width, towers) for layer in self.conv_layers]
    self.convs = nnx.List()
    in_features = opt.in_channels
    for layer, out in zip(self.conv_layers, channels):
      self.convs.append(
        TowerConv(
          in_features,
          out,
          towers=towers,
          within_tower=layer.within_tower,
          kernel_size=layer.kernel,
          stride=layer.stride,
          padding=layer.padding,
          weight_std=std(layer.name),
          bias=scheme.bias.get(layer.name, 0.0),
          dtype=dtype,
          rngs=rngs,
        )
      )
      in_features = out
    fc_width = scaled_channels(opt.fc_width, width, towers)
    self.adaptive_pool = opt.adaptive_pool
    flat = (opt.adaptive_pool or self.feature_sizes["pool5"]) ** 2 * channels[-1]
    self.fc6 = TowerDense(
      flat, fc_width, towers=towers, weight_std=std("fc6"), bias=scheme.bias.get("fc6", 0.0), dtype=dtype, rngs=rngs
    )
    self.fc7 = TowerDense(
      fc_width, fc_width, towers=towers, weight_std=std("fc7"), bias=scheme.bias.get("fc7", 0.0), dtype=dtype, rngs=rngs
    )
    fc8_std = 0.0 if opt.fc8_zero_init else std("fc8")
    self.fc8 = TowerDense(fc_width, opt.num_classes, towers=1, weight_std=fc8_std, bias=0.0, dtype=dtype, rngs=rngs)
    self.dropout6 = TowerDropout(opt.dropout_rate, rngs=rngs)
    self.dropout7 = TowerDropout(opt.dropout_rate, rngs=rngs)

  def __call__(self, images: jax.Array, *, tower_axis: str | None = None, batch_axis: str | None = None) -> jax.Array:
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
    for layer, conv in zip(self.conv_layers, self.convs):
      if not layer.within_tower:
        x = exchange(x, tower_axis) if isinstance(x, list) else x
      x = self._activate(layer.name, conv(x), tower_axis)
      if layer.pool:
        x = [layers.max_pool(p, self.pool_window, self.pool_stride) for p in x]
    if self.adaptive_pool:
      x = [layers.adaptive_avg_pool(p, self.adaptive_pool) for p in x]
    flat = exchange(x, tower_axis)
    return flat.reshape(flat.shape[0], -1)

  def classify(self, features: jax.Array, *, tower_axis: str | None = None, batch_axis: str | None = None) -> jax.Array:
    """The fully connected half, fc6 to fc8, on flattened features from :meth:`features`."""
    x = self.hidden(features, tower_axis=tower_axis, batch_axis=batch_axis)
    (logits,) = self.fc8(exchange(x, tower_axis))
    return logits.astype(jnp.float32)

  def hidden(
    self, features: jax.Array, *, tower_axis: str | None = None, batch_axis: str | None = None
  ) -> list[jax.Array]:
    """fc6 and fc7 on flattened features: fc7's activations after its ReLU (and dropout), per tower.

    This is what fc8 reads; :meth:`fc7_features` joins the towers for the paper's feature-space
    nearest neighbours (Figure 4, right).
    """
    x = self.fc6(features)
    x = self.dropout6([jax.nn.relu(p) for p in x], tower_axis, batch_axis)
    x = self.fc7(exchange(x, tower_axis))
    return self.dropout7([jax.nn.relu(p) for p in x], tower_axis, batch_axis)

  def fc7_features(self, images: jax.Array) -> jax.Array:
    """fc7's post-ReLU activations (batch, fc width) of NHWC images, both towers joined, on one device.

    Call it on the eval-mode model (dropout off) for the paper's 4096-dimensional image features.
    """
    return exchange(self.hidden(self.features(images)), None).astype(jnp.float32)

  def _activate(self, name: str, x: list[jax.Array], tower_axis: str | None) -> list[jax.Array]:
    """The ReLU of layer ``name``'s maps, with its LRN before or after it (``lrn_position``), then
    cnorm2 after conv2's (cuda-convnet2's order: conv2, ReLU, rnorm2, cnorm2, pool2)."""
    position = self.lrn_positions.get(name) if self.lrn is not None else None
    if position == "before_relu":
      x = self._normalize(x, tower_axis)
    x = [jax.nn.relu(p) for p in x]
    if position == "after_relu":
      x = self._normalize(x, tower_axis)
    if name == "conv2" and self.cnorm2 is not None:
      x = [self.cnorm2(p) for p in x]  # within each map: the towers do not matter
    return x

  def _normalize(self, parts: list[jax.Array], tower_axis: str | None) -> list[jax.Array]:
    """LRN per tower, or over all towers' channels with each tower keeping its own slice."""
    if self.lrn_per_tower or self.towers == 1:
      return [self.lrn(p) for p in parts]
    full = self.lrn(exchange(parts, tower_axis))
    width = parts[0].shape[-1]
    first = 0 if tower_axis is None else jax.lax.axis_index(tower_axis) * len(parts)
    return [jax.lax.dynamic_slice_in_dim(full, (first + t) * width, width, axis=-1) for t in range(len(parts))]


def conv_layers(channels=tuple(layer.channels for layer in CONV_LAYERS), conv1_padding: int = 0) -> tuple:
  """:data:`CONV_LAYERS` with the kernel counts ``channels`` and conv1's ``conv1_padding`` (the
  options ``channels`` and ``conv1_padding``; their defaults give the paper's table itself)."""
  table = [dataclasses.replace(layer, channels=int(count)) for layer, count in zip(CONV_LAYERS, channels)]
  table[0] = dataclasses.replace(table[0], padding=conv1_padding)
  return tuple(table)


def feature_map_sizes(input_size: int, pool_window: int = 3, pool_stride: int = 2, conv1_padding: int = 0) -> dict:
  """Spatial side of every feature map for a square input; raises if pool5 would vanish."""
  sizes = _feature_map_sizes(input_size, pool_window, pool_stride, conv1_padding)
  if min(sizes.values()) < 1:
    smallest = next(
      s for s in range(1, 10_000) if min(_feature_map_sizes(s, pool_window, pool_stride, conv1_padding).values()) >= 1
    )
    raise ValueError(
      f"AlexNet option input_size={input_size} is too small for pool {pool_window}/{pool_stride}: "
      f"feature maps would be {sizes}; pool5 must be at least 1x1, so input_size >= {smallest}"
    )
  return sizes


def _feature_map_sizes(input_size: int, pool_window: int, pool_stride: int, conv1_padding: int) -> dict:
  sizes, side = {}, input_size
  for layer in conv_layers(conv1_padding=conv1_padding):
    side = (side + 2 * layer.padding - layer.kernel) // layer.stride + 1
    sizes[layer.name] = side
    if layer.pool:
      side = (side - pool_window) // pool_stride + 1
      sizes["pool" + layer.name[-1]] = side
  return sizes


def count_params(model: nnx.Module) -> int:
  """Number of scalar parameters in ``model``."""
  return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def scaled_channels(channels: int, width: float, towers: int) -> int:
  """Channel count times the width multiplier, rounded to a multiple of the tower count."""
  return max(towers, int(round(channels * width / towers)) * towers)
