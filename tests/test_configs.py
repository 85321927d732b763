"""Every preset config builds a model (abstractly: no weights materialised) and documents its command."""

import importlib
import pkgutil

import jax
import pytest
from flax import nnx

import mrcnn_jax
from mrcnn_jax import configs

PRESETS = sorted(m.name for m in pkgutil.iter_modules(configs.__path__))


@pytest.mark.parametrize("name", PRESETS)
def test_preset_builds_and_docstring_starts_with_its_command(name):
  module = importlib.import_module(f"mrcnn_jax.configs.{name}")
  first_line = module.__doc__.splitlines()[0]
  assert first_line.strip().startswith(("python -m", "scripts/")), first_line
  config = configs.get(name)
  if not config.num_classes:  # taken from the dataset when training: any count builds
    config.num_classes = 3
  params = nnx.state(nnx.eval_shape(lambda: mrcnn_jax.build_model(config)), nnx.Param)
  count = sum(x.size for x in jax.tree.leaves(params))
  assert count > 0
  if name.startswith("r50_fpn"):
    assert 40e6 < count < 50e6, count  # R50-FPN Mask R-CNN: ~44M parameters
  if name.startswith("x101_fpn"):
    assert 100e6 < count < 110e6, count  # X101-32x8d-FPN Mask R-CNN: ~107M (Detectron2's, with BN buffers)


def test_unknown_preset_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown config"):
    configs.get("r9000")


def test_override_sets_dotted_fields_and_refuses_unknown_ones():
  config = configs.override(configs.get("shapes_tiny"), {"model.width": 8, "model.anchor_sizes": [4, 8]})
  assert config.model.width == 8 and config.model.anchor_sizes == (4, 8)
  with pytest.raises(ValueError, match=r"unknown config field 'model.bakbone' \(did you mean 'model.backbone'\?\)"):
    configs.override(config, {"model.bakbone": "resnet50"})
  with pytest.raises(ValueError, match="unknown config field 'model.width.x'"):
    configs.override(config, {"model.width.x": 1})
  with pytest.raises(ValueError, match="'model.width'"):
    configs.override(config, {"model.width": "wide"})


def test_tiny_preset_is_what_the_tests_use(make_config):
  assert make_config().to_dict() == configs.get("tiny").to_dict()


def test_coco_presets_name_the_80_classes():
  for name in ("r50_fpn_coco", "r50_c4_coco"):
    config = configs.get(name)
    assert config.num_classes == len(config.class_names) == 80
    assert config.class_names[0] == "person" and config.class_names[-1] == "toothbrush"
