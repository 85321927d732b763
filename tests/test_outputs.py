"""A command's outputs (mrcnn_jax/outputs.py): complete or absent, never over an input."""

import os

import pytest

from mrcnn_jax import outputs
from mrcnn_jax.errors import UserError


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
  path = tmp_path / "config.json"
  outputs.write_text(str(path), "old")
  with pytest.raises(KeyboardInterrupt), outputs.atomic_path(str(path)) as tmp:
    with open(tmp, "w") as f:
      f.write("half")
    raise KeyboardInterrupt
  assert path.read_text() == "old" and os.listdir(tmp_path) == ["config.json"]
  outputs.write_text(str(path), "new")
  assert path.read_text() == "new" and os.listdir(tmp_path) == ["config.json"]


def test_an_output_that_is_an_input_is_refused(tmp_path):
  image = tmp_path / "in" / "a.png"
  outputs.check_not_inputs([str(tmp_path / "out" / "a.png")], [str(image)], "--out")
  with pytest.raises(UserError, match=r"--out: writing .*/in/\./a.png would overwrite the input .*/in/a.png"):
    outputs.check_not_inputs([os.path.join(str(tmp_path), "in", ".", "a.png")], [str(image)], "--out")
