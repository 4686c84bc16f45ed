"""A PyTorch ``.pth`` state dict read with numpy, without PyTorch, safely: both formats ``torch.save`` writes.

* The zip format (PyTorch >= 1.6): the archive holds ``data.pkl`` (the pickled dict) and one raw file per
  storage (``data/KEY``).
* The legacy format (before 1.6, and ``_use_new_zipfile_serialization=False``; torchvision's older model
  files): four pickles in a row -- a magic number, the protocol version (1001), the writer's system info,
  the dict itself -- then the pickled list of storage keys, then each storage in that order as its
  element count (int64, little-endian) and its raw bytes. Tensors are rebuilt once the storages are read.

Either pickle is read by an Unpickler that resolves only the names a state dict of tensors uses (the
tensor and parameter rebuild functions, the storage types, ``OrderedDict``): any other global -- which
is how a pickle runs code -- is refused before it is called. Each tensor becomes a C-contiguous numpy array.
"""

from __future__ import annotations

import collections
import dataclasses
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
  """torch._utils._rebuild_tensor_v2, in numpy: ``size`` elements of ``storage`` at ``stride`` (a
  :class:`_Deferred` tensor where the storage is not read yet, in a legacy file)."""
  del requires_grad, backward_hooks, metadata
  if isinstance(storage, _LegacyStorage):
    return _Deferred(storage.key, storage_offset, size, stride)
  strides = tuple(step * storage.itemsize for step in stride)
  view = np.lib.stride_tricks.as_strided(storage[storage_offset:], shape=tuple(size), strides=strides)
  return np.ascontiguousarray(view)


def _rebuild_tensor_v1(storage, storage_offset, size, stride):
  """torch._utils._rebuild_tensor (files of PyTorch 0.3), the same in numpy."""
  return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
  del requires_grad, backward_hooks
  return data


_ALLOWED = {
  ("collections", "OrderedDict"): collections.OrderedDict,
  ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
  ("torch._utils", "_rebuild_tensor"): _rebuild_tensor_v1,
  ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
  **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _TensorUnpickler(pickle.Unpickler):
  """Resolves only :data:`_ALLOWED`; each storage is ``storage(key, storage type, element count)``."""

  def __init__(self, data: bytes | io.BufferedIOBase, storage):
    super().__init__(io.BytesIO(data) if isinstance(data, bytes) else data)
    self._storage = storage

  def find_class(self, module: str, name: str):
    try:
      return _ALLOWED[(module, name)]
    except KeyError:
      raise UnsafeFileError(
        f"the pickle names {module}.{name}, which is not part of a state dict of tensors (it could run code)"
      ) from None

  def persistent_load(self, pid):
    kind, storage_type, key, _location, count = pid[:5]  # legacy files add a view's metadata
    if kind != "storage" or not isinstance(storage_type, _StorageType):
      raise UnsafeFileError(f"the pickle refers to a {kind!r} of {storage_type!r}, not a tensor storage")
    return self._storage(key, storage_type, count)


def _as_array(raw: bytes, storage_type: str, count: int) -> np.ndarray:
  storage = np.frombuffer(raw, _STORAGE_DTYPES[storage_type], count)
  if storage_type == "BFloat16Storage":
    storage = (storage.astype(np.uint32) << 16).view(np.float32)
  return storage


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """Parameter name -> array of a state dict that ``torch.save`` wrote to ``path`` (either format).

  Raises :class:`UnsafeFileError` for a pickle that holds anything but tensors, ``ValueError`` for a
  file that is no torch file or holds no dict of tensors."""
  state = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
  if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
    raise ValueError("the file holds no state dict (a dict of parameter name -> tensor)")
  return dict(state)


def _read_zip(path: str):
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
    pickles = [name for name in names if name.endswith("/data.pkl")]
    if len(pickles) != 1:
      raise ValueError(f"a torch zip file holds one */data.pkl; this one holds {len(pickles)}")
    prefix = pickles[0][: -len("data.pkl")]
    byteorder = archive.read(f"{prefix}byteorder") if f"{prefix}byteorder" in names else b"little"
    if byteorder != b"little":
      raise ValueError("the tensors are stored big-endian; only little-endian files are read")

    def storage(key, storage_type, count):
      return _as_array(archive.read(f"{prefix}data/{key}"), storage_type, count)

    return _TensorUnpickler(archive.read(pickles[0]), storage).load()


LEGACY_MAGIC, LEGACY_PROTOCOL = 0x1950A86A20F9469CFC6C, 1001
ZIP_MAGIC = b"PK\x03\x04"
# How a legacy file begins: its magic number pickled (protocol 2), less the pickle's STOP.
LEGACY_PREFIX = pickle.dumps(LEGACY_MAGIC, protocol=2)[:-1]


def is_torch_file(head: bytes) -> bool:
  """Whether a file's first bytes (16 suffice) are a torch file's, in either format."""
  return head.startswith(ZIP_MAGIC) or head.startswith(LEGACY_PREFIX)


@dataclasses.dataclass(frozen=True)
class _LegacyStorage:
  """A legacy file's storage while its pickle is read: the data follow the pickle."""

  key: str


@dataclasses.dataclass(frozen=True)
class _Deferred:
  """A legacy file's tensor before its storage is read: where it lies in which storage."""

  key: str
  storage_offset: int
  size: tuple
  stride: tuple


def _read_legacy(path: str):
  """The object of a legacy-format torch file: its pickle with storages as placeholders, then the storages."""
  with open(path, "rb") as f:
    try:
      magic, protocol, _ = (_TensorUnpickler(f, None).load() for _ in range(3))
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as error:
      raise ValueError("not a torch file (neither the zip format nor the legacy one)") from error
    if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL:
      raise ValueError(f"not a torch file (magic {magic!r}, protocol {protocol!r})")
    kinds: dict[str, tuple[str, int]] = {}

    def storage(key, storage_type, count):
      kinds[key] = (storage_type, count)
      return _LegacyStorage(key)

    state = _TensorUnpickler(f, storage).load()
    keys = _TensorUnpickler(f, None).load()
    arrays = {key: _read_storage(f, *kinds[key]) for key in keys}
  if not isinstance(state, dict):
    raise ValueError("the file holds no state dict (a dict of parameter name -> tensor)")
  return {name: _materialise(value, arrays) for name, value in state.items()}


def _read_storage(f, storage_type: str, count: int) -> np.ndarray:
  """One storage of a legacy file: its element count (int64), then its bytes."""
  stored = int(np.frombuffer(f.read(8), "<i8")[0])
  if stored != count:
    raise ValueError(f"a storage holds {stored} elements where its tensor says {count}")
  itemsize = np.dtype(_STORAGE_DTYPES[storage_type]).itemsize
  raw = f.read(count * itemsize)
  if len(raw) != count * itemsize:
    raise ValueError("the file ends inside a storage (cut off)")
  return _as_array(raw, storage_type, count)


def _materialise(value, arrays: dict[str, np.ndarray]):
  if not isinstance(value, _Deferred):
    return value
  return _rebuild_tensor(arrays[value.key], value.storage_offset, value.size, value.stride)
