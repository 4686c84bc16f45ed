"""Protocol Buffers' wire format, read directly: the fields of one message, without a compiled .proto.

A message is a sequence of (field number, wire type, value) records; this reads them in order. Large
length-delimited values (a caffemodel's packed weights, hundreds of MB) come back as ``memoryview``
slices of the input, never copied, so numpy can view them in place.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
  """Bytes that are not a well-formed protobuf message."""


def read_varint(data: memoryview, position: int) -> tuple[int, int]:
  """The base-128 varint at ``position`` and the position after it."""
  result, shift = 0, 0
  while True:
    if position >= len(data):
      raise WireError("truncated varint")
    byte = data[position]
    position += 1
    result |= (byte & 0x7F) << shift
    if not byte & 0x80:
      return result, position
    shift += 7
    if shift > 63:
      raise WireError("varint longer than 10 bytes")


def fields(data: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
  """(field number, wire type, value) of every record of the message ``data``: an int for varints,
  a memoryview of the bytes for the other wire types (8 or 4 bytes for the fixed ones)."""
  position, end = 0, len(data)
  while position < end:
    key, position = read_varint(data, position)
    number, wire_type = key >> 3, key & 7
    if wire_type == VARINT:
      value, position = read_varint(data, position)
    elif wire_type in (FIXED64, FIXED32):
      size = 8 if wire_type == FIXED64 else 4
      value, position = data[position : position + size], position + size
    elif wire_type == LENGTH_DELIMITED:
      size, position = read_varint(data, position)
      value, position = data[position : position + size], position + size
    else:
      raise WireError(f"field {number} has wire type {wire_type}, which proto3/proto2 messages do not use")
    if position > end:
      raise WireError(f"field {number} runs past the end of its message")
    yield number, wire_type, value


def packed_varints(value: int | memoryview) -> list[int]:
  """A repeated integer field's one record: a single varint, or a packed run of them."""
  if isinstance(value, int):
    return [value]
  numbers, position = [], 0
  while position < len(value):
    number, position = read_varint(value, position)
    numbers.append(number)
  return numbers


def floats(records: list[memoryview], dtype: str) -> np.ndarray:
  """A repeated float (``"<f4"``) or double (``"<f8"``) field's records, packed or one value each,
  joined; a single packed record is viewed in place (no copy)."""
  if len(records) == 1:
    return np.frombuffer(records[0], dtype)
  return np.concatenate([np.frombuffer(record, dtype) for record in records]) if records else np.zeros(0, dtype)
