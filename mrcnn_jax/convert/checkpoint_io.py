"""PyTorch and Detectron2 checkpoints read as numpy arrays, without torch and without running pickled code.

Three formats, told apart by their bytes:
- torch's zip format (``torch.save`` since torch 1.6: torchvision and Detectron2 ``.pth`` files): a zip
  holding ``<archive>/data.pkl``, a pickle whose tensors name raw storages ``<archive>/data/<key>``,
  and ``<archive>/byteorder``;
- torch's format before 1.6 (older torchvision weights): pickles one after another, then the raw
  storages (_read_legacy_torch);
- a plain pickle of numpy arrays (Detectron2 model-zoo ``.pkl`` files, Caffe2 / Detectron1 ones).

Every pickle is read by an unpickler that resolves only the globals in ``_ALLOWED`` (torch's tensor
and storage names map to stand-ins defined here; torch is never imported). Anything else, such as
``os.system``, ``builtins.eval`` or a model class, is refused with a UserError before it is called.
Tensors come back as C-contiguous numpy arrays of their own dtype (bfloat16 as float32), copied out
of their storage, so views, offsets and storages shared by several tensors come out as saved.
"""

from __future__ import annotations

import _compat_pickle
import argparse
import collections
import dataclasses
import io
import os
import pickle
import zipfile
from typing import Any, BinaryIO

import numpy as np

from mrcnn_jax.errors import UserError

# The first object of torch's pre-1.6 format (``_use_new_zipfile_serialization=False``).
_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
# torch.<Name>Storage -> numpy dtype of the stored elements (bfloat16: its 16 bits, widened on read).
_STORAGE_DTYPES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2", "BFloat16Storage": "u2",
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}
# Keys under which checkpoints wrap their weights, tried in this order (see read_checkpoint).
WRAPPER_KEYS = ("model", "state_dict", "blobs")


@dataclasses.dataclass(frozen=True)
class _StorageType:
  """Stand-in for the class ``torch.<name>``, as a storage's persistent id names it."""
  name: str

  @property
  def itemsize(self) -> int:
    """Bytes per stored element."""
    return np.dtype(_STORAGE_DTYPES[self.name]).itemsize

  def decode(self, raw: bytes, byteorder: str) -> np.ndarray:
    """The storage's elements as a native-order 1-D array (bfloat16 widened exactly to float32)."""
    if len(raw) % self.itemsize:
      raise UserError(f"a {self.name} of {len(raw)} bytes is not whole {self.itemsize}-byte elements")
    dtype = np.dtype(_STORAGE_DTYPES[self.name]).newbyteorder(byteorder)
    elements = np.frombuffer(raw, dtype).astype(dtype.newbyteorder("="), copy=False)
    if self.name == "BFloat16Storage":
      return (elements.astype(np.uint32) << 16).view(np.float32)
    return elements


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *unused) -> np.ndarray:
  """Stand-in for ``torch._utils._rebuild_tensor_v2``: the (offset, size, stride) view of ``storage``
  as a C-contiguous copy; ``unused`` is (requires_grad, backward_hooks[, metadata])."""
  del unused
  size, stride = tuple(size), tuple(stride)
  if len(size) != len(stride) or min(size + stride + (offset,), default=0) < 0:
    raise UserError(f"a tensor has an invalid layout: size {size}, stride {stride}, offset {offset}")
  if 0 in size:
    return np.zeros(size, storage.dtype)
  last = offset + sum((n - 1) * s for n, s in zip(size, stride))
  if last >= storage.size:
    raise UserError(f"a tensor of size {size}, stride {stride} at offset {offset} reaches past its "
                    f"storage of {storage.size} elements")
  view = np.lib.stride_tricks.as_strided(storage[offset:], size, [s * storage.itemsize for s in stride])
  return np.array(view, order="C")


def _rebuild_parameter(data: np.ndarray, *unused) -> np.ndarray:
  """Stand-in for ``torch._utils._rebuild_parameter``: the parameter's tensor, ``data``."""
  del unused
  return data


def _latin1_encode(text: str, encoding: str) -> bytes:
  """``_codecs.encode`` as protocol-2 pickles use it for bytes (latin-1 only: other codecs import
  modules); returns the bytes."""
  if encoding.replace("-", "").lower() not in ("latin1", "iso88591"):
    raise UserError(f"encodes bytes as {encoding!r}, which pickle never does")
  return text.encode("latin1")


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("argparse", "Namespace"): argparse.Namespace,   # torchvision's reference scripts save their args
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{(f"{numpy_core}.multiarray", "_reconstruct"): np.zeros(1).__reduce__()[0]
       for numpy_core in ("numpy.core", "numpy._core")},
    **{(f"{numpy_core}.multiarray", "scalar"): np.float32(0).__reduce__()[0]
       for numpy_core in ("numpy.core", "numpy._core")},
    **{(f"{numpy_core}.numeric", "_frombuffer"): np.zeros(1).__reduce_ex__(5)[0]
       for numpy_core in ("numpy.core", "numpy._core")},
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "bytes"): bytes,
}


# While a torch < 1.6 file's tensors are first read, to learn its storages' types (see _read_legacy_torch).
_ALLOWED_WITHOUT_TENSORS = {**_ALLOWED, ("torch._utils", "_rebuild_tensor_v2"): lambda *args: None}


class _RestrictedUnpickler(pickle.Unpickler):
  """Unpickles only the globals in ``allowed``; ``storage(pid)`` returns the storage that a persistent
  id ``('storage', storage_type, key, ...)`` names (None: the pickle may have none)."""

  def __init__(self, file: BinaryIO, storage=None, allowed=None):
    super().__init__(file, encoding="latin1")   # Python 2 pickles, as Detectron2 reads them
    self._storage = storage
    self._allowed = allowed or _ALLOWED

  def find_class(self, module: str, name: str) -> Any:
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)   # Python 2 names: __builtin__, ...
    try:
      return self._allowed[module, name]
    except KeyError:
      raise UserError(f"refers to {module}.{name}, which a weights file never needs: "
                      "refusing to unpickle it") from None

  def persistent_load(self, pid: Any) -> np.ndarray | None:
    if (self._storage is None or not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage"
        or not isinstance(pid[1], _StorageType)):
      raise UserError(f"holds a reference {str(pid)[:80]} that is not a torch storage")
    return self._storage(pid)


def _read_torch_zip(zf: zipfile.ZipFile) -> Any:
  """The content of a ``torch.save`` zip file, its tensors as numpy arrays."""
  pickles = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
  if len(pickles) != 1:
    raise UserError("is a zip file but not one that torch.save writes (one <archive>/data.pkl)")
  archive = pickles[0][:-len("data.pkl")]
  names = set(zf.namelist())
  byteorder = zf.read(archive + "byteorder").decode() if archive + "byteorder" in names else "little"
  if byteorder not in ("little", "big"):
    raise UserError(f"has byteorder {byteorder!r}, neither 'little' nor 'big'")
  storages = {}

  def storage(pid: tuple) -> np.ndarray:   # ('storage', storage_type, key, location, numel)
    _, storage_type, key, *_ = pid
    if key not in storages:
      if f"{archive}data/{key}" not in names:
        raise UserError(f"lacks the storage {archive}data/{key} that a tensor names")
      raw = zf.read(f"{archive}data/{key}")
      storages[key] = storage_type.decode(raw, "<" if byteorder == "little" else ">")
    return storages[key]

  return _RestrictedUnpickler(io.BytesIO(zf.read(pickles[0])), storage).load()


def _read_legacy_torch(f: BinaryIO) -> Any:
  """The content of a file in torch's format before 1.6, after its first pickle (the magic number):
  pickles of the protocol version, system facts, the content and its sorted storage keys, then each
  storage as int64 numel + numel little-endian elements. The content is read twice: first without
  tensors, to learn each storage's type (which sets the size of its elements, hence where the next
  storage starts), then with them."""
  _RestrictedUnpickler(f).load()   # protocol version
  _RestrictedUnpickler(f).load()   # sys_info: byte order (storages are little-endian regardless), ...
  content_start = f.tell()
  types = {}

  def note_type(pid: tuple) -> None:   # ('storage', storage_type, key, location, numel, view_metadata)
    if len(pid) != 6 or pid[5] is not None:
      raise UserError(f"has a storage view {str(pid)[:80]}, which torch has not written since 0.4")
    types[pid[2]] = pid[1]

  _RestrictedUnpickler(f, note_type, _ALLOWED_WITHOUT_TENSORS).load()
  storages = {}
  for key in _RestrictedUnpickler(f).load():
    numel = int.from_bytes(f.read(8), "little")
    if key not in types:
      raise UserError(f"stores a storage {key!r} that no tensor names")
    storages[key] = types[key].decode(f.read(numel * types[key].itemsize), "<")
  if types.keys() - storages.keys():
    raise UserError(f"lacks the storages {sorted(types.keys() - storages.keys())[:3]} that tensors name")
  f.seek(content_start)
  return _RestrictedUnpickler(f, lambda pid: storages[pid[2]]).load()


def read_object(path: str | os.PathLike) -> Any:
  """The whole content of a checkpoint (dicts, lists, numbers, strings, such as Detectron2's
  ``__author__`` or a training iteration) with every tensor as a numpy array."""
  try:
    if zipfile.is_zipfile(path):
      with zipfile.ZipFile(path) as zf:
        return _read_torch_zip(zf)
    with open(path, "rb") as f:
      content = _RestrictedUnpickler(f).load()
      if isinstance(content, int) and content == _LEGACY_TORCH_MAGIC:
        return _read_legacy_torch(f)
      return content
  except UserError as e:
    raise UserError(f"checkpoint {path}: {e}") from None
  except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, TypeError, ValueError) as e:
    raise UserError(f"checkpoint {path} is neither a torch.save file nor a pickle of arrays: "
                    f"{type(e).__name__}: {e}") from e


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """The checkpoint's weights, ``{name: array}`` in the order saved.

  The weights are the dict under the first of WRAPPER_KEYS that the top-level dict has: "model"
  (Detectron2 ``.pkl`` and ``.pth``, torchvision's reference scripts), "state_dict" (Lightning and
  others), "blobs" (Caffe2 / Detectron1); otherwise the top-level dict itself (a plain
  ``torch.save(model.state_dict())``). Every value must be an array of numbers; it comes back
  C-contiguous (numpy scalars as 0-d arrays). The rest of the file (optimizer, iteration, metadata)
  is in ``read_object(path)``.
  """
  content = read_object(path)
  if not isinstance(content, dict):
    raise UserError(f"checkpoint {path} holds a {type(content).__name__}, not a dict of weights")
  weights = next((content[k] for k in WRAPPER_KEYS if isinstance(content.get(k), dict)), content)
  arrays = {}
  for name, value in weights.items():
    value = np.asarray(value, order="C") if isinstance(value, (np.ndarray, np.generic)) else value
    if not (isinstance(name, str) and isinstance(value, np.ndarray) and value.dtype.kind in "biufc"):
      raise UserError(f"checkpoint {path}: {name!r} is a {type(value).__name__} of "
                      f"{getattr(value, 'dtype', 'no dtype')}, not an array of numbers named by a string")
    arrays[name] = value
  return arrays
