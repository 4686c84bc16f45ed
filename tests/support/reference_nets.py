"""The reference AlexNets as their own frameworks run them, for parity tests of the weight import.

* :func:`torchvision` -- torchvision itself (a CUDA build on PyPI: its C extension does not load with
  the CPU torch here, so ``torchvision._meta_registrations``, the only module that needs it at import,
  is stubbed first; its models and transforms are plain Python).
* :func:`caffe_net` -- BVLC's bvlc_alexnet with Caffe's semantics in PyTorch (grouped convolutions,
  ``LocalResponseNorm(5, 1e-4, 0.75, k=1)`` after the ReLU, 3/2 max-pooling), and
  :func:`caffemodel_bytes` / :func:`blob_bytes`: its weights and a mean image written in Caffe's wire
  format, in the ``layer`` (BlobShape) or the V1 ``layers`` (legacy dims) layout, by a writer written
  here from caffe.proto's field numbers (independent of the reader under test).
"""

from __future__ import annotations

import sys
import types

import numpy as np
import torch
from torch import nn

CAFFE_NAMES = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
_V1_TYPES = {"Convolution": 4, "InnerProduct": 14, "ReLU": 18}


def torchvision():
  """The torchvision package, importable with the CPU torch."""
  sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
  import torchvision as package  # pylint: disable=g-import-not-at-top

  return package


def caffe_net(seed: int = 0, fc8_scale: float = 1.0) -> nn.Sequential:
  """bvlc_alexnet (deploy.prototxt) in PyTorch, random weights; its input is 0-255 BGR minus the mean."""
  torch.manual_seed(seed)
  lrn = lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
  pool = lambda: nn.MaxPool2d(3, 2)
  net = nn.Sequential(
    nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), lrn(), pool(),
    nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), lrn(), pool(),
    nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
    nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
    nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), pool(),
    nn.Flatten(),
    nn.Linear(9216, 4096), nn.ReLU(),
    nn.Linear(4096, 4096), nn.ReLU(),
    nn.Linear(4096, 1000),
  )  # fmt: skip
  with torch.no_grad():
    net[-1].weight.mul_(fc8_scale)
  return net.eval()


def weighted_layers(net: nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
  """(weights, bias) of each convolution and linear layer of ``net``, in order."""
  return [
    (m.weight.detach().numpy(), m.bias.detach().numpy()) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
  ]


def _varint(value: int) -> bytes:
  out = bytearray()
  while True:
    byte, value = value & 0x7F, value >> 7
    out.append(byte | (0x80 if value else 0))
    if not value:
      return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
  if isinstance(payload, int):
    return _varint(number << 3) + _varint(payload)
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def blob_bytes(array: np.ndarray, *, legacy: bool) -> bytes:
  """A BlobProto: legacy num/channels/height/width (fc weights 1x1xOxI, biases 1x1x1xN) or a BlobShape."""
  if legacy:
    dims = (1,) * (4 - array.ndim) + array.shape
    head = b"".join(_field(number, dim) for number, dim in zip((1, 2, 3, 4), dims))
  else:
    head = _field(7, _field(1, b"".join(_varint(dim) for dim in array.shape)))
  return head + _field(5, array.astype("<f4").tobytes())


def caffemodel_bytes(net: nn.Module, *, v1: bool) -> bytes:
  """A NetParameter of ``net``'s weights named conv1..fc8 (each followed by a ReLU layer without blobs)."""
  layers = [_field(1, b"CaffeNet")]
  for name, (weights, bias) in zip(CAFFE_NAMES, weighted_layers(net)):
    kind = "Convolution" if weights.ndim == 4 else "InnerProduct"
    blobs = [blob_bytes(weights, legacy=v1), blob_bytes(bias, legacy=v1)]
    layers.append(_layer(name, kind, blobs, v1=v1))
    layers.append(_layer(f"relu_{name}", "ReLU", [], v1=v1))
  return b"".join(layers)


def _layer(name: str, kind: str, blobs: list[bytes], *, v1: bool) -> bytes:
  if v1:  # NetParameter.layers (2): V1LayerParameter name 4, type 5 (enum), blobs 6
    return _field(2, _field(4, name.encode()) + _field(5, _V1_TYPES[kind]) + b"".join(_field(6, b) for b in blobs))
  # NetParameter.layer (100): LayerParameter name 1, type 2, blobs 7
  return _field(100, _field(1, name.encode()) + _field(2, kind.encode()) + b"".join(_field(7, b) for b in blobs))
