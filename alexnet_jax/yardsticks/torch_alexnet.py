"""The independent PyTorch AlexNet: the benchmark's yardstick and the parity tests' reference.

Same network as ``model/alexnet.py`` with the same options (towers, width, per-layer channels, conv1's
padding, the adaptive pool before fc6, LRN position, LRN per tower, dropout), read from the same layer
table (``alexnet.CONV_LAYERS``) but written the way a PyTorch user would write it: NCHW,
``groups=towers`` convolutions for the within-tower conv2, conv4 and conv5, ``nn.LocalResponseNorm``
on each tower's channel block, ``nn.MaxPool2d``. Its layers are named ``conv1`` ... ``fc8``, so
:func:`state_dict_from_jax` (the JAX -> PyTorch weight layout, used by the tests and
``python -m alexnet_jax.export``) loads into it with ``load_state_dict``.

LRN convention: ``torch.nn.LocalResponseNorm`` divides alpha by the window size, so the paper's
literal ``alpha`` is passed as ``alpha * size`` (see ``model/layers.py``). cuda-convnet2's within-channel
``cnorm2`` has no PyTorch module: its window sum is ``avg_pool2d`` of the squares over the zero-padded
n x n window, times n * n.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from alexnet_jax.model import alexnet, options


class TorchAlexNet(nn.Module):
  """AlexNet for NCHW images of side ``input_size``; ``towers=2`` is the paper's grouped net."""

  def __init__(
    self,
    num_classes: int = 1000,
    *,
    towers: int = 2,
    input_size: int = 227,
    in_channels: int = 3,
    width: float = 1.0,
    channels: tuple[int, ...] = tuple(layer.channels for layer in alexnet.CONV_LAYERS),
    fc_width: int = alexnet.FC_WIDTH,
    conv1_padding: int = 0,
    adaptive_pool: int = 0,
    dropout_rate: float = 0.5,
    lrn: bool = True,
    lrn_position: str = "after_relu",
    lrn_per_tower: bool = True,
    lrn_size: int = 5,
    lrn_k: float = 2.0,
    lrn_alpha: float = 1e-4,
    lrn_beta: float = 0.75,
    pool_window: int = 3,
    pool_stride: int = 2,
    cnorm2: bool = False,
  ):
    super().__init__()
    self.sizes = {}  # feature map sides seen by the last forward pass
    side = adaptive_pool or alexnet.feature_map_sizes(input_size, pool_window, pool_stride, conv1_padding)["pool5"]
    self.conv_layers = alexnet.conv_layers(channels, conv1_padding)
    self.adaptive_pool = nn.AdaptiveAvgPool2d(adaptive_pool) if adaptive_pool else nn.Identity()
    self.towers, self.cnorm2 = towers, cnorm2
    self.lrn_positions = dict(zip(("conv1", "conv2"), options.lrn_positions(lrn_position)))
    self.lrn_groups = towers if lrn_per_tower else 1
    self.lrn = nn.LocalResponseNorm(lrn_size, alpha=lrn_alpha * lrn_size, beta=lrn_beta, k=lrn_k) if lrn else None
    self.pool = nn.MaxPool2d(pool_window, pool_stride)
    channels = in_channels
    for layer in self.conv_layers:
      out = alexnet.scaled_channels(layer.channels, width, towers)
      setattr(
        self,
        layer.name,
        nn.Conv2d(
          channels,
          out,
          layer.kernel,
          stride=layer.stride,
          padding=layer.padding,
          groups=towers if layer.within_tower else 1,
        ),
      )
      channels = out
    fc_width = alexnet.scaled_channels(fc_width, width, towers)
    self.fc6 = nn.Linear(channels * side * side, fc_width)
    self.fc7 = nn.Linear(fc_width, fc_width)
    self.fc8 = nn.Linear(fc_width, num_classes)
    self.dropout = nn.Dropout(dropout_rate)

  def normalize(self, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([self.lrn(part) for part in x.chunk(self.lrn_groups, dim=1)], dim=1)

  def within_channel_norm(self, x: torch.Tensor) -> torch.Tensor:
    """cuda-convnet2's cnorm2 (``options.CNORM2``): x / (k + alpha * window sum of x**2) ** beta, n x n clipped."""
    size, k, alpha, beta = (options.CNORM2[name] for name in ("size", "k", "alpha", "beta"))
    sums = nn.functional.avg_pool2d(x * x, size, stride=1, padding=size // 2, count_include_pad=True) * size**2
    return x / (k + alpha * sums) ** beta

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    for layer in self.conv_layers:
      x = getattr(self, layer.name)(x)
      self.sizes[layer.name] = x.shape[-1]
      position = self.lrn_positions.get(layer.name) if self.lrn is not None else None
      if position == "before_relu":
        x = self.normalize(x)
      x = torch.relu(x)
      if position == "after_relu":
        x = self.normalize(x)
      if layer.name == "conv2" and self.cnorm2:
        x = self.within_channel_norm(x)
      if layer.pool:
        x = self.pool(x)
        self.sizes["pool" + layer.name[-1]] = x.shape[-1]
    x = torch.flatten(self.adaptive_pool(x), 1)
    x = self.dropout(torch.relu(self.fc6(x)))
    x = self.dropout(torch.relu(self.fc7(x)))
    return self.fc8(x)


def state_dict_from_jax(params) -> dict[str, np.ndarray]:
  """``TorchAlexNet``'s state dict, as numpy arrays, from an ``AlexNet``'s parameter state.

  JAX stacks each layer's towers on a leading axis (kernels (T, ..., out/T), biases (T, out/T),
  tower t owning outputs t*out/T onwards); PyTorch holds full (out, in, kh, kw) conv weights and
  (out, in) linear weights. fc6 reads an NHWC flatten (h, w, c) in JAX and an NCHW one (c, h, w) in
  PyTorch, so its input axis is permuted.
  """
  state = {}
  for layer, conv in zip(alexnet.CONV_LAYERS, params["convs"].values()):
    kernel = np.asarray(conv["kernel"][...])
    state[f"{layer.name}.weight"] = np.concatenate([k.transpose(3, 2, 0, 1) for k in kernel], axis=0)
  dense = {
    name: np.concatenate([k.T for k in np.asarray(params[name]["kernel"][...])], axis=0)
    for name in ("fc6", "fc7", "fc8")
  }
  channels = state[f"{alexnet.CONV_LAYERS[-1].name}.weight"].shape[0]
  side = int(round((dense["fc6"].shape[1] / channels) ** 0.5))
  fc6 = dense["fc6"].reshape(-1, side, side, channels).transpose(0, 3, 1, 2)
  dense["fc6"] = fc6.reshape(fc6.shape[0], -1)
  for name, weight in dense.items():
    state[f"{name}.weight"] = weight
  biases = {
    **{layer.name: conv["bias"] for layer, conv in zip(alexnet.CONV_LAYERS, params["convs"].values())},
    **{name: params[name]["bias"] for name in ("fc6", "fc7", "fc8")},
  }
  for name, bias in biases.items():
    state[f"{name}.bias"] = np.asarray(bias[...]).reshape(-1)
  return state
