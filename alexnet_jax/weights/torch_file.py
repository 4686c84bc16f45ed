"""A PyTorch ``.pth`` state dict (``torch.save``'s zip format) read with numpy, without PyTorch, safely.

The archive holds ``data.pkl`` (the pickled dict) and one raw file per storage (``data/KEY``). The pickle
is read by an Unpickler that resolves only the names a state dict of tensors uses (the tensor and
parameter rebuild functions, the storage types, ``OrderedDict``): any other global -- which is how a
pickle runs code -- is refused before it is called. Each tensor becomes a C-contiguous numpy array.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile

import numpy as np

FORMAT = "torch state dict"
# torch's storage types by name, as numpy dtypes (bfloat16 is read as its bits and widened).
_STORAGE_DTYPES = {
  "FloatStorage": "<f4",
  "DoubleStorage": "<f8",
  "HalfStorage": "<f2",
  "BFloat16Storage": "<u2",
  "LongStorage": "<i8",
  "IntStorage": "<i4",
  "ShortStorage": "<i2",
  "CharStorage": "i1",
  "ByteStorage": "u1",
  "BoolStorage": "?",
}


class UnsafeFileError(pickle.UnpicklingError):
  """The pickle names something other than tensors: it could run code, so it is not read."""


class _StorageType(str):
  """A storage type the pickle named (``torch.FloatStorage``): just its name."""


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
  """torch._utils._rebuild_tensor_v2, in numpy: ``size`` elements of ``storage`` at ``stride``."""
  del requires_grad, backward_hooks, metadata
  strides = tuple(step * storage.itemsize for step in stride)
  view = np.lib.stride_tricks.as_strided(storage[storage_offset:], shape=tuple(size), strides=strides)
  return np.ascontiguousarray(view)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
  del requires_grad, backward_hooks
  return data


_ALLOWED = {
  ("collections", "OrderedDict"): collections.OrderedDict,
  ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
  ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
  **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _TensorUnpickler(pickle.Unpickler):
  """Resolves only :data:`_ALLOWED`; storages come from the archive's raw files."""

  def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
    super().__init__(io.BytesIO(data))
    self._archive, self._prefix = archive, prefix

  def find_class(self, module: str, name: str):
    try:
      return _ALLOWED[(module, name)]
    except KeyError:
      raise UnsafeFileError(
        f"the pickle names {module}.{name}, which is not part of a state dict of tensors (it could run code)"
      ) from None

  def persistent_load(self, pid):
    kind, storage_type, key, _location, count = pid
    if kind != "storage" or not isinstance(storage_type, _StorageType):
      raise UnsafeFileError(f"the pickle refers to a {kind!r} of {storage_type!r}, not a tensor storage")
    raw = self._archive.read(f"{self._prefix}data/{key}")
    storage = np.frombuffer(raw, _STORAGE_DTYPES[storage_type], count)
    if storage_type == "BFloat16Storage":
      storage = (storage.astype(np.uint32) << 16).view(np.float32)
    return storage


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """Parameter name -> array of a state dict that ``torch.save`` wrote to ``path``.

  Raises :class:`UnsafeFileError` for a pickle that holds anything but tensors, ``ValueError`` for a
  file that is not a zip-format torch file or holds no dict of tensors."""
  try:
    archive = zipfile.ZipFile(path)
  except zipfile.BadZipFile as error:
    raise ValueError("not a zip-format torch file (torch.save since PyTorch 1.6 writes one)") from error
  with archive:
    names = archive.namelist()
    pickles = [name for name in names if name.endswith("/data.pkl")]
    if len(pickles) != 1:
      raise ValueError(f"a torch zip file holds one */data.pkl; this one holds {len(pickles)}")
    prefix = pickles[0][: -len("data.pkl")]
    byteorder = archive.read(f"{prefix}byteorder") if f"{prefix}byteorder" in names else b"little"
    if byteorder != b"little":
      raise ValueError("the tensors are stored big-endian; only little-endian files are read")
    state = _TensorUnpickler(archive.read(pickles[0]), archive, prefix).load()
  if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
    raise ValueError("the file holds no state dict (a dict of parameter name -> tensor)")
  return dict(state)
