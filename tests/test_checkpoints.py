"""mrcnn_jax.load's config handling: saved JSON over today's base config; workdir/step paths."""

import json

import pytest

from mrcnn_jax import checkpoints
from mrcnn_jax.configs import shapes_tiny
from mrcnn_jax.errors import UserError


def test_saved_config_is_laid_over_the_base(tmp_path):
  saved = json.loads(shapes_tiny.get_config().to_json())
  del saved["model"]["roi"]["canonical_size"]  # a field added after this workdir was trained
  saved["model"]["width"] = 24
  (tmp_path / "config.json").write_text(json.dumps(saved))
  config = checkpoints.load_config(str(tmp_path))
  assert config.model.width == 24 and config.model.roi.canonical_size == 224
  assert config.model.anchor_sizes == (8, 16, 32, 64, 128)  # JSON list back to a tuple
  assert config.class_names == ("circle", "square", "triangle", "bar")


def test_missing_config_names_the_workdir(tmp_path):
  with pytest.raises(UserError, match="training workdir"):
    checkpoints.load_config(str(tmp_path))


@pytest.mark.parametrize("path,expected", [
    ("runs/a", ("runs/a", None)),
    ("runs/a/checkpoints/1500", ("runs/a", 1500)),
    ("runs/a/checkpoints/1500/", ("runs/a", 1500)),
])
def test_workdir_or_checkpoint_paths(path, expected):
  assert checkpoints._split_path(path) == expected


def test_unknown_saved_field_names_the_file_and_field(tmp_path):
  saved = json.loads(shapes_tiny.get_config().to_json())
  saved["model"]["roi"]["fc_dims"] = 512
  (tmp_path / "config.json").write_text(json.dumps(saved))
  with pytest.raises(ValueError, match=r"config.json: unknown config field 'model.roi.fc_dims' \(did you mean "
                                       r"'model.roi.fc_dim'\?\)"):
    checkpoints.load_config(str(tmp_path))
