"""The two reference AlexNets' files laid out as this AlexNet's parameters, shape by shape.

Caffe and PyTorch store a convolution's weights as (out, in / groups, kh, kw) and a fully connected
layer's as (out, in), with fc6's inputs in (channel, row, column) order; this model holds a
convolution as (towers, kh, kw, in per tower, out / towers), a dense layer as (towers, in, out /
towers) and flattens pool5 as (row, column, channel). Caffe's ``group: 2`` halves are the towers
(the first half of the outputs reads the first half of the inputs, as a within-tower layer does).
:func:`convert` checks every blob against the shape the model needs and says which layer and both
shapes when one does not fit. Pure numpy.
"""

from __future__ import annotations

import numpy as np

from alexnet_jax import errors
from alexnet_jax.model import alexnet


class LayoutError(errors.UserError, ValueError):
  """A file whose layers or shapes do not fit the model; the message names the layer and both shapes."""


def convert(layers: dict[str, tuple[np.ndarray, ...]], names: tuple[str, ...], target: dict, *, bgr: bool) -> dict:
  """The model's parameters (a pure dict shaped as ``target``, ``nnx.to_pure_dict`` of its params)
  from ``layers`` (the file's layer name -> (weights, bias)); ``names`` are the file's names of
  :data:`alexnet.LAYER_NAMES` in order. ``bgr``: conv1 reads BGR in the file; its input channels
  are reversed so that the model reads RGB."""
  missing = [name for name in names if name not in layers]
  if missing:
    raise LayoutError(f"the file has no layer {', '.join(missing)} (its layers with weights: {', '.join(layers)})")
  conv5 = target["convs"][len(alexnet.CONV_LAYERS) - 1]["kernel"].shape
  pool5_channels = conv5[0] * conv5[-1]
  params = {"convs": {}}
  for index, (ours, theirs) in enumerate(zip(alexnet.LAYER_NAMES, names)):
    where = target["convs"][index] if ours.startswith("conv") else target[ours]
    weights, bias = _weights_and_bias(layers[theirs], theirs)
    if ours == "conv1" and bgr:
      weights = weights[:, ::-1]
    converted = {
      "kernel": _kernel(ours, theirs, weights, where["kernel"].shape, pool5_channels),
      "bias": _fit(theirs, "bias", bias, (int(np.prod(where["bias"].shape)),)).reshape(where["bias"].shape),
    }
    if ours.startswith("conv"):
      params["convs"][index] = converted
    else:
      params[ours] = converted
  return params


def _weights_and_bias(blobs: tuple[np.ndarray, ...], name: str) -> tuple[np.ndarray, np.ndarray]:
  if len(blobs) != 2:
    raise LayoutError(f"layer {name} holds {len(blobs)} blobs, not 2 (weights and bias)")
  return blobs


def _kernel(ours: str, theirs: str, weights: np.ndarray, shape: tuple[int, ...], pool5_channels: int) -> np.ndarray:
  """The file's (out, in, [kh, kw]) weights as the model's tower-stacked kernel of ``shape``; fc6's
  inputs are ``pool5_channels`` square maps."""
  if ours.startswith("conv"):
    towers, kh, kw, inputs, outputs = shape
    weights = _fit(theirs, "weights", weights, (towers * outputs, inputs, kh, kw))
    return weights.reshape(towers, outputs, inputs, kh, kw).transpose(0, 3, 4, 2, 1)
  towers, inputs, outputs = shape
  weights = _fit(theirs, "weights", weights, (towers * outputs, inputs))
  if ours == "fc6":
    weights = _rows_to_channels_last(weights, pool5_channels)
  return weights.T.reshape(inputs, towers, outputs).transpose(1, 0, 2)


def _rows_to_channels_last(weights: np.ndarray, channels: int) -> np.ndarray:
  """fc6's (out, C*H*W) inputs reordered to this model's flattening, (out, H*W*C), for ``channels``
  square maps (the model's own fc6 shape, already checked, guarantees the sizes fit)."""
  outputs, inputs = weights.shape
  side = round((inputs // channels) ** 0.5)
  return weights.reshape(outputs, channels, side, side).transpose(0, 2, 3, 1).reshape(outputs, inputs)


def _fit(name: str, what: str, blob: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  """``blob`` if it has ``shape``, or Caffe's legacy 4-d form of it (leading 1s: fc weights 1x1xOxI,
  biases 1x1x1xN); else :class:`LayoutError` naming the layer and both shapes."""
  squeezed = blob.reshape(blob.shape[blob.ndim - len(shape) :]) if _leading_ones(blob.shape, len(shape)) else blob
  if tuple(squeezed.shape) != tuple(shape):
    raise LayoutError(f"layer {name}: the file's {what} have shape {tuple(blob.shape)}, the model needs {tuple(shape)}")
  return squeezed.astype(np.float32, copy=False)


def _leading_ones(shape: tuple[int, ...], rank: int) -> bool:
  return len(shape) > rank and all(dim == 1 for dim in shape[: len(shape) - rank])
