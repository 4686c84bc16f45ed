"""An independent PyTorch AlexNet, the yardstick of ``benchmark.py``.

Same network as ``models.AlexNet`` with its defaults: the two towers as ``groups=2`` convolutions
(conv2, conv4, conv5 within tower), LRN after the ReLU of conv1 and conv2 normalising each tower's
maps on their own, overlapping 3/2 max-pooling, dropout 0.5 on fc6 and fc7. It is written the way
a PyTorch user would write it (NCHW, ``nn.Sequential``), not translated from the JAX code, so the
benchmark compares two natural implementations of one network.

LRN convention: ``torch.nn.LocalResponseNorm`` divides alpha by the window size, so the paper's
literal ``alpha`` is passed as ``alpha * size`` (see ``layers.py``).
"""

from __future__ import annotations

import torch
from torch import nn

_FC_WIDTH = 4096


class TowerLRN(nn.Module):
  """Cross-channel LRN applied to each tower's channel block separately (the two-GPU original)."""

  def __init__(self, towers: int, size: int = 5, k: float = 2.0, alpha: float = 1e-4,
               beta: float = 0.75):
    super().__init__()
    self.towers = towers
    self.norm = nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if self.towers == 1:
      return self.norm(x)
    return torch.cat([self.norm(part) for part in x.chunk(self.towers, dim=1)], dim=1)


class TorchAlexNet(nn.Module):
  """AlexNet for NCHW images of side ``input_size``; ``towers=2`` is the paper's grouped net."""

  def __init__(self, num_classes: int = 1000, *, towers: int = 2, input_size: int = 227,
               in_channels: int = 3, dropout_rate: float = 0.5):
    super().__init__()
    g = towers
    self.features = nn.Sequential(
        nn.Conv2d(in_channels, 96, 11, stride=4), nn.ReLU(inplace=True), TowerLRN(g),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2, groups=g), nn.ReLU(inplace=True), TowerLRN(g),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, 3, padding=1, groups=g), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1, groups=g), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
    )
    side = pool5_side(input_size)
    self.classifier = nn.Sequential(
        nn.Linear(256 * side * side, _FC_WIDTH), nn.ReLU(inplace=True), nn.Dropout(dropout_rate),
        nn.Linear(_FC_WIDTH, _FC_WIDTH), nn.ReLU(inplace=True), nn.Dropout(dropout_rate),
        nn.Linear(_FC_WIDTH, num_classes),
    )

  def forward(self, images: torch.Tensor) -> torch.Tensor:
    return self.classifier(torch.flatten(self.features(images), 1))


def pool5_side(input_size: int) -> int:
  """Spatial side after pool5 (6 for a 227x227 input)."""
  side = (input_size - 11) // 4 + 1
  for pool_after in (True, True, False, False, True):
    if pool_after:
      side = (side - 3) // 2 + 1
  if side < 1:
    raise ValueError(f"input_size={input_size} is too small: pool5 would be {side}x{side}")
  return side
