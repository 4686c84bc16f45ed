"""A Caffe ``.caffemodel`` (a protobuf ``NetParameter``) read into named layers of numpy blobs, without
Caffe: the fields used here, from caffe.proto, are read off the wire (``protobuf_wire``).

Both layouts Caffe has written: ``layer`` (field 100, ``LayerParameter``: name 1, type 2 as a string,
blobs 7) and the older ``layers`` (field 2, ``V1LayerParameter``: name 4, type 5 as an enum, blobs 6),
as BVLC's 2014 ``bvlc_alexnet.caffemodel`` holds. A blob (``BlobProto``) has its data as packed float
(field 5; or double, 8) and its shape as ``BlobShape`` (field 7, dims field 1) or the legacy
num/channels/height/width (fields 1-4), where a fully connected layer's weights are 1 x 1 x out x in
and a bias 1 x 1 x 1 x n. A mean image (``.binaryproto``) is one ``BlobProto``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from alexnet_jax.weights import protobuf_wire as wire

FORMAT = "caffemodel"
_NEW_LAYER, _V1_LAYER = 100, 2  # NetParameter.layer, NetParameter.layers
# LayerParameter's (name, type, blobs) fields, and V1LayerParameter's.
_LAYER_FIELDS = {_NEW_LAYER: (1, 2, 7), _V1_LAYER: (4, 5, 6)}
# V1LayerParameter.LayerType values of the layers that hold weights, by their V2 names.
_V1_TYPES = {4: "Convolution", 14: "InnerProduct", 39: "Deconvolution"}
_LAYOUTS = {_NEW_LAYER: "NetParameter.layer", _V1_LAYER: "NetParameter.layers (V1)"}
_LEGACY_DIMS, _DATA, _SHAPE, _DOUBLE_DATA = (1, 2, 3, 4), 5, 7, 8


@dataclasses.dataclass(frozen=True)
class Layer:
  """One layer of the net that holds blobs (weights first, then the bias)."""

  name: str
  type: str
  blobs: tuple[np.ndarray, ...]


def read_layers(data: bytes) -> tuple[str, list[Layer]]:
  """(the layout, "NetParameter.layer" or "NetParameter.layers (V1)") and the layers with blobs of a
  serialized ``NetParameter``, in file order."""
  layers, layouts = [], set()
  for number, _, value in wire.fields(memoryview(data)):
    if number in _LAYER_FIELDS:
      layer = _layer(value, *_LAYER_FIELDS[number], v1=number == _V1_LAYER)
      if layer.blobs:
        layers.append(layer)
        layouts.add(number)
  if not layers:
    raise wire.WireError("no layer with weights (neither NetParameter.layer nor .layers holds any blobs)")
  return " and ".join(_LAYOUTS[number] for number in sorted(layouts)), layers


def read_blob(data: bytes) -> np.ndarray:
  """The array of a serialized ``BlobProto`` (a mean image's ``.binaryproto``), in its own shape."""
  return _blob(memoryview(data))


def _layer(message: memoryview, name_field: int, type_field: int, blobs_field: int, *, v1: bool) -> Layer:
  name, kind, blobs = "", "", []
  for number, _, value in wire.fields(message):
    if number == name_field:
      name = bytes(value).decode("utf-8", "replace")
    elif number == type_field:
      kind = _V1_TYPES.get(value, f"V1 type {value}") if v1 else bytes(value).decode("utf-8", "replace")
    elif number == blobs_field:
      blobs.append(_blob(value))
  return Layer(name, kind, tuple(blobs))


def _blob(message: memoryview) -> np.ndarray:
  """The array of one ``BlobProto``, shaped by its ``BlobShape`` or else its legacy dims."""
  singles, doubles, dims, legacy = [], [], None, {}
  for number, _, value in wire.fields(message):
    if number == _DATA:
      singles.append(value)
    elif number == _DOUBLE_DATA:
      doubles.append(value)
    elif number == _SHAPE:
      dims = [d for n, _, v in wire.fields(value) if n == 1 for d in wire.packed_varints(v)]
    elif number in _LEGACY_DIMS:
      legacy[number] = value
  array = wire.floats(singles, "<f4") if singles or not doubles else wire.floats(doubles, "<f8").astype(np.float32)
  shape = tuple(dims) if dims is not None else tuple(legacy.get(n, 0) for n in _LEGACY_DIMS)
  if int(np.prod(shape)) != array.size:
    raise wire.WireError(f"a blob of shape {shape} holds {array.size} values")
  return array.reshape(shape)
