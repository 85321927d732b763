"""Tests for mrcnn_jax.convert.checkpoint_io: torch zip files (hand-written and real torch 2.13.0
output, also in torch's format before 1.6), Detectron2-style pickles, the Detectron2 oracle's zoo file, and refused pickles."""

import argparse
import codecs
import collections
import os
import pickle
import subprocess
import zipfile

import numpy as np
import pytest
import oracles
from torch_zip_writer import Storage, Tensor, tensor, write_torch_zip

from mrcnn_jax.convert.checkpoint_io import read_checkpoint, read_object
from mrcnn_jax.errors import UserError

DATA = os.path.join(os.path.dirname(__file__), "data")
def assert_same(actual, expected):
  assert actual.dtype == expected.dtype and actual.shape == expected.shape
  assert actual.flags.c_contiguous
  np.testing.assert_array_equal(actual, expected)


# ----------------------------------------------------------------------------- torch files

def test_state_dict_of_float32_tensors_keeps_names_and_order(tmp_path):
  rng = np.random.default_rng(0)
  expected = collections.OrderedDict(
      (name, rng.standard_normal(shape).astype(np.float32))
      for name, shape in [("conv.weight", (4, 3, 3, 3)), ("conv.bias", (4,)), ("fc.weight", (2, 4))])
  write_torch_zip(tmp_path / "w.pth", collections.OrderedDict((k, tensor(v)) for k, v in expected.items()))
  weights = read_checkpoint(tmp_path / "w.pth")
  assert list(weights) == list(expected)
  for name, array in expected.items():
    assert_same(weights[name], array)


def test_transposed_view_comes_out_contiguous(tmp_path):
  storage = Storage(np.arange(6, dtype=np.float32))
  write_torch_zip(tmp_path / "t.pth", {"t": Tensor(storage, 0, (3, 2), (1, 3))})
  assert_same(read_checkpoint(tmp_path / "t.pth")["t"], np.arange(6, dtype=np.float32).reshape(2, 3).T)


def test_storage_shared_by_two_tensors_at_offsets_is_written_once_and_read_for_both(tmp_path):
  base = Storage(np.arange(12, dtype=np.float32))
  write_torch_zip(tmp_path / "s.pth", {"a": Tensor(base, 2, (3,), (1,)), "b": Tensor(base, 6, (2, 3), (3, 1)),
                                       "every_third": Tensor(base, 0, (4,), (3,))})
  assert sum("/data/" in n for n in zipfile.ZipFile(tmp_path / "s.pth").namelist()) == 1
  weights = read_checkpoint(tmp_path / "s.pth")
  assert_same(weights["a"], np.array([2, 3, 4], np.float32))
  assert_same(weights["b"], np.arange(6, 12, dtype=np.float32).reshape(2, 3))
  assert_same(weights["every_third"], np.array([0, 3, 6, 9], np.float32))


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int64, np.int32, np.uint8, np.bool_])
def test_dtypes(tmp_path, dtype):
  expected = (np.arange(-3, 5) % 2 == 0) if dtype == np.bool_ else np.arange(1, 9).astype(dtype) * 3
  write_torch_zip(tmp_path / "d.pth", {"x": tensor(expected.reshape(2, 4))})
  assert_same(read_checkpoint(tmp_path / "d.pth")["x"], expected.reshape(2, 4))


def test_bfloat16_reads_exactly_as_float32(tmp_path):
  expected = np.array([1.5, -2.0, 0.0078125, 3e38], np.float32)
  expected = (expected.view(np.uint32) & 0xFFFF0000).view(np.float32)   # representable in bfloat16
  bits = (expected.view(np.uint32) >> 16).astype(np.uint16)
  write_torch_zip(tmp_path / "b.pth", {"x": tensor(bits, "BFloat16Storage")})
  assert_same(read_checkpoint(tmp_path / "b.pth")["x"], expected)


def test_empty_and_zero_dimensional_tensors(tmp_path):
  write_torch_zip(tmp_path / "e.pth", {"empty": tensor(np.zeros((0, 3), np.float32)),
                                       "scalar": tensor(np.array(2.5, np.float32))})
  weights = read_checkpoint(tmp_path / "e.pth")
  assert_same(weights["empty"], np.zeros((0, 3), np.float32))
  assert_same(weights["scalar"], np.array(2.5, np.float32))


def test_big_endian_file_and_any_archive_name(tmp_path):
  expected = np.arange(5, dtype=np.float32) - 2.5
  write_torch_zip(tmp_path / "be.pth", {"x": tensor(expected)}, archive="my_weights", byteorder="big")
  assert_same(read_checkpoint(tmp_path / "be.pth")["x"], expected)


@pytest.mark.parametrize("wrapper", ["model", "state_dict"])
def test_wrapper_is_unwrapped_and_the_rest_kept_in_read_object(tmp_path, wrapper):
  state = collections.OrderedDict(w=tensor(np.ones((2, 2), np.float32)))
  write_torch_zip(tmp_path / "m.pth", {wrapper: state, "optimizer": {"state": {}}, "iteration": 9})
  assert list(read_checkpoint(tmp_path / "m.pth")) == ["w"]
  content = read_object(tmp_path / "m.pth")
  assert content["iteration"] == 9 and content["optimizer"] == {"state": {}}


def test_tensor_reaching_past_its_storage_is_refused(tmp_path):
  write_torch_zip(tmp_path / "bad.pth", {"x": Tensor(Storage(np.zeros(4, np.float32)), 2, (2, 2), (2, 1))})
  with pytest.raises(UserError, match="reaches past its storage of 4 elements"):
    read_checkpoint(tmp_path / "bad.pth")


@pytest.mark.parametrize("name", ["torch_fixture.pth", "torch_fixture_legacy.pth"])
def test_real_torch_2_13_files(name):
  """Written by torch 2.13.0's torch.save (write_torch_fixture.py), in its zip format and in its format
  from before torch 1.6; the .npz holds what torch itself says each tensor is."""
  content = read_object(os.path.join(DATA, name))
  expected = np.load(os.path.join(DATA, "torch_fixture.npz"))
  for key in expected.files:
    group, tensor_name = key.split("/")
    assert_same(content[group][tensor_name], expected[key])
  assert content["iteration"] == 7
  assert content["optimizer"]["param_groups"][0]["momentum"] == 0.9
  weights = read_checkpoint(os.path.join(DATA, name))
  assert list(weights) == [k.split("/")[1] for k in expected.files if k.startswith("model/")]


# ----------------------------------------------------------------------------- plain pickles

def detectron2_zoo_content():
  rng = np.random.default_rng(1)
  model = {"backbone.conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
           "head.bias": rng.standard_normal(5).astype(np.float16),
           "fortran": np.asfortranarray(rng.standard_normal((3, 2))),
           "empty": np.zeros((0, 4), np.float32),
           "count": np.int64(3)}
  return {"model": model, "__author__": "someone", "matching_heuristics": False}


@pytest.mark.parametrize("protocol", [2, 4, 5, None])
def test_detectron2_zoo_pickle(tmp_path, protocol):
  content = detectron2_zoo_content()
  with open(tmp_path / "zoo.pkl", "wb") as f:
    pickle.dump(content, f, protocol=protocol)
  weights = read_checkpoint(tmp_path / "zoo.pkl")
  assert list(weights) == list(content["model"])
  for name, array in content["model"].items():
    assert_same(weights[name], np.asarray(array, order="C"))
  assert read_object(tmp_path / "zoo.pkl")["__author__"] == "someone"


class _Python2Pickler(pickle._Pickler):  # pylint: disable=protected-access
  """Writes bytes as Python 2 wrote its str (BINSTRING), as in pickles of numpy arrays from Python 2."""
  dispatch = dict(pickle._Pickler.dispatch)  # pylint: disable=protected-access
  dispatch[bytes] = lambda self, b: self.write(pickle.BINSTRING + len(b).to_bytes(4, "little") + b)


def test_python2_pickle_of_arrays(tmp_path):
  """Caffe2 / Detectron1 .pkl files come from Python 2: array bytes are str, read back as latin-1."""
  expected = np.array([[1.5, -2.0], [3.25, 1e-3]], np.float32)
  with open(tmp_path / "py2.pkl", "wb") as f:
    _Python2Pickler(f, protocol=2).dump({"blobs": {"conv1_w": expected}})
  assert_same(read_checkpoint(tmp_path / "py2.pkl")["conv1_w"], expected)


def test_caffe2_blobs_wrapper(tmp_path):
  with open(tmp_path / "c2.pkl", "wb") as f:
    pickle.dump({"blobs": {"conv1_w": np.ones((2, 3), np.float32)}, "cfg": "..."}, f, protocol=2)
  assert list(read_checkpoint(tmp_path / "c2.pkl")) == ["conv1_w"]


def test_torchvision_reference_script_checkpoint_with_its_args(tmp_path):
  with open(tmp_path / "tv.pth", "wb") as f:
    pickle.dump({"model": {"w": np.ones(2, np.float32)}, "args": argparse.Namespace(lr=0.02), "epoch": 3}, f)
  assert list(read_checkpoint(tmp_path / "tv.pth")) == ["w"]
  assert read_object(tmp_path / "tv.pth")["args"].lr == 0.02


def test_weights_that_are_not_arrays_are_refused(tmp_path):
  with open(tmp_path / "s.pkl", "wb") as f:
    pickle.dump({"model": {"w": "not an array"}, "__author__": "x"}, f)
  with pytest.raises(UserError, match="'w' is a str"):
    read_checkpoint(tmp_path / "s.pkl")


def test_files_that_are_no_checkpoint_get_a_clear_error(tmp_path):
  (tmp_path / "text.pth").write_text("hello")
  with pytest.raises(UserError, match="neither a torch.save file nor a pickle"):
    read_checkpoint(tmp_path / "text.pth")
  with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
    zf.writestr("readme.txt", "hi")
  with pytest.raises(UserError, match="not one that torch.save writes"):
    read_checkpoint(tmp_path / "other.zip")
  with open(tmp_path / "cut.pth", "wb") as f:
    pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)   # how torch < 1.6 files start
    pickle.dump(1001, f, protocol=2)
  with pytest.raises(UserError, match="neither a torch.save file nor a pickle"):
    read_checkpoint(tmp_path / "cut.pth")


# ----------------------------------------------------------------------------- refused pickles

class _Exploit:
  """Unpickling calls ``func(*args)`` (it would create the marker file)."""

  def __init__(self, func, *args):
    self.func, self.args = func, args

  def __reduce__(self):
    return self.func, self.args


def _exploits(marker):
  touch = f"touch {marker}"
  return {
      "posix.system": _Exploit(os.system, touch),
      "builtins.eval": _Exploit(eval, f"open({str(marker)!r}, 'w')"),
      "subprocess.Popen": _Exploit(subprocess.Popen, ["touch", str(marker)]),
      "builtins.exec": _Exploit(exec, f"open({str(marker)!r}, 'w')"),
  }


@pytest.mark.parametrize("refused", ["posix.system", "builtins.eval", "subprocess.Popen", "builtins.exec"])
@pytest.mark.parametrize("protocol", [2, 4])
def test_pickle_calling_code_is_refused_without_running_it(tmp_path, refused, protocol):
  marker = tmp_path / "pwned"
  content = {"model": {"w": np.ones(2, np.float32), "x": _exploits(marker)[refused]}, "__author__": "x"}
  with open(tmp_path / "evil.pkl", "wb") as f:
    pickle.dump(content, f, protocol=protocol)
  with pytest.raises(UserError, match=f"evil.pkl: refers to {refused}, which a weights file never needs: "
                                      "refusing to unpickle it"):
    read_checkpoint(tmp_path / "evil.pkl")
  assert not marker.exists()


def test_torch_zip_whose_pickle_calls_code_is_refused_without_running_it(tmp_path):
  marker = tmp_path / "pwned"
  write_torch_zip(tmp_path / "evil.pth", {"w": tensor(np.ones(2, np.float32)),
                                          "x": _Exploit(os.system, f"touch {marker}")})
  with pytest.raises(UserError, match="refers to posix.system"):
    read_checkpoint(tmp_path / "evil.pth")
  assert not marker.exists()


def test_legacy_torch_file_whose_pickle_calls_code_is_refused_without_running_it(tmp_path):
  marker = tmp_path / "pwned"
  with open(tmp_path / "evil.pth", "wb") as f:
    pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)   # how torch < 1.6 files start
    pickle.dump(_Exploit(os.system, f"touch {marker}"), f, protocol=2)
  with pytest.raises(UserError, match="refers to posix.system"):
    read_checkpoint(tmp_path / "evil.pth")
  assert not marker.exists()


def test_storage_type_that_is_not_a_torch_storage_is_refused(tmp_path):
  write_torch_zip(tmp_path / "odd.pth", {"x": tensor(np.ones(2, np.float32), "FloatTensor")})
  with pytest.raises(UserError, match="refers to torch.FloatTensor"):
    read_checkpoint(tmp_path / "odd.pth")


def test_codecs_encode_only_decodes_latin1(tmp_path):
  """Protocol 2 pickles bytes as _codecs.encode(text, 'latin1'); another codec is refused."""
  with open(tmp_path / "codec.pkl", "wb") as f:
    pickle.dump({"x": _Exploit(codecs.encode, "text", "rot13")}, f, protocol=2)
  with pytest.raises(UserError, match="encodes bytes as 'rot13'"):
    read_object(tmp_path / "codec.pkl")


# ----------------------------------------------------------------------------- Detectron2 oracle

def test_detectron2_oracle_zoo_pickle(tmp_path):
  """d2_weights.py writes the 307-tensor R50-FPN file as Detectron2's zoo does (~170 MB, seconds)."""
  d2_weights = oracles.d2_weights()
  d2_weights.write(0, tmp_path / "model_final.pkl")
  weights = read_checkpoint(tmp_path / "model_final.pkl")
  (tmp_path / "model_final.pkl").unlink()
  assert len(weights) == 307 and all(w.dtype == np.float32 for w in weights.values())
  assert d2_weights.fingerprint(weights).startswith("f835ff3102a45b1a")   # names, order, shapes, values
