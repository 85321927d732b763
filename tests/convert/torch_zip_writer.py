"""Writes torch.save-format zip files by hand, without torch, for the checkpoint reader's tests.

``write_torch_zip(path, obj)`` pickles ``obj`` (protocol 2, as torch does) with every ``Tensor`` as
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`` and every
``Storage`` as the persistent id ``('storage', torch.<Name>Storage, key, 'cpu', numel)``, the bytes of
each storage in ``<archive>/data/<key>``: the layout torch 2.x writes.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import pickle
import zipfile

import numpy as np

_STORAGE_NAMES = {"f4": "FloatStorage", "f8": "DoubleStorage", "f2": "HalfStorage", "i8": "LongStorage",
                  "i4": "IntStorage", "u1": "ByteStorage", "b1": "BoolStorage"}


@dataclasses.dataclass(frozen=True)
class Global:
  """A global that pickle writes by name (``GLOBAL module name``) without importing it."""
  module: str
  name: str

  def __call__(self, *args):
    raise TypeError("only pickled, never called")


@dataclasses.dataclass(eq=False)
class Storage:
  """A torch storage: 1-D ``elements``; ``name`` defaults to the torch class of their dtype (give
  "BFloat16Storage" with uint16 elements holding bfloat16 bits)."""
  elements: np.ndarray
  name: str = ""

  def __post_init__(self):
    self.name = self.name or _STORAGE_NAMES[self.elements.dtype.str[1:]]


@dataclasses.dataclass
class Tensor:
  """A torch tensor: the (offset, size, stride) view of ``storage``, in elements."""
  storage: Storage
  offset: int
  size: tuple
  stride: tuple


def tensor(array: np.ndarray, name: str = "") -> Tensor:
  """A contiguous Tensor over a new Storage holding ``array``."""
  array = np.asarray(array, order="C")
  strides = tuple(s // array.itemsize for s in array.strides)
  return Tensor(Storage(array.reshape(-1), name), 0, array.shape, strides)


class _TorchPickler(pickle._Pickler):  # pylint: disable=protected-access
  """The pure-Python pickler (its dispatch table takes Global), with torch's tensors and storages."""
  dispatch = dict(pickle._Pickler.dispatch)  # pylint: disable=protected-access
  dispatch[Global] = lambda self, g: self.write(f"c{g.module}\n{g.name}\n".encode())

  def __init__(self, file):
    super().__init__(file, protocol=2)
    self.storages = {}

  def reducer_override(self, obj):
    if isinstance(obj, Tensor):
      return Global("torch._utils", "_rebuild_tensor_v2"), (
          obj.storage, obj.offset, tuple(obj.size), tuple(obj.stride), False, collections.OrderedDict())
    return NotImplemented

  def persistent_id(self, obj):
    if not isinstance(obj, Storage):
      return None
    key = self.storages.setdefault(id(obj), (str(len(self.storages)), obj))[0]
    return "storage", Global("torch", obj.name), key, "cpu", obj.elements.size


def write_torch_zip(path, obj, archive: str = "archive", byteorder: str = "little") -> None:
  """Writes ``obj`` (dicts, lists, numbers, Tensors) as ``torch.save(obj, path)`` would."""
  data = io.BytesIO()
  pickler = _TorchPickler(data)
  pickler.dump(obj)
  with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
    zf.writestr(f"{archive}/data.pkl", data.getvalue())
    zf.writestr(f"{archive}/byteorder", byteorder)
    for key, storage in pickler.storages.values():
      order = "<" if byteorder == "little" else ">"
      elements = storage.elements.astype(storage.elements.dtype.newbyteorder(order))
      zf.writestr(f"{archive}/data/{key}", elements.tobytes())
    zf.writestr(f"{archive}/version", "3\n")
