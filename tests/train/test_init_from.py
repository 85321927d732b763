"""Fine-tuning from converted weights (``config.train.init_from``): a tiny Detectron2 Mask R-CNN pickle and
a tiny ImageNet ResNet in Caffe2's names go through ``mrcnn_jax.convert``, then into a model for another
number of classes or another head, and into a few training steps on the shapes data; so do tiny models of
the other zoo families (Detectron2's C4 and ResNeXt-FPN, torchvision's v2)."""

import logging
import pickle
import re

import jax
import numpy as np
import pytest
from convert.torch_zip_writer import tensor, write_torch_zip
from convert.tv_state_dicts import tv_v2_shapes
from flax import nnx

import mrcnn_jax
from mrcnn_jax.checkpoints import load_config
from mrcnn_jax.convert import detectron2
from mrcnn_jax.convert.__main__ import main as convert_cli
from mrcnn_jax.errors import UserError
from mrcnn_jax.model.mask_rcnn import build_model
from mrcnn_jax.train import init_from, loop
from mrcnn_jax.train.checkpoint import read_variables

# Our path -> Detectron2's name (the converter's NAME_RULES backwards), checked against it in d2_name.
TO_D2 = ((r"^(backbone/(?:bottom_up/)?)stem/", r"\1stem/conv1/"),
         (r"^((?:backbone|roi_heads)/.*)/conv/kernel$", r"\1/weight"), (r"/norm/scale$", "/norm/weight"),
         (r"/norm/mean$", "/norm/running_mean"), (r"/norm/var$", "/norm/running_var"), (r"/kernel$", "/weight"))
# A tiny FPN Mask R-CNN in Detectron2's form: no norm in its heads, FPN 256 wide (the converter's fc1
# layout assumes it), the tiny preset's heads.
SOURCE = {"head_norm": "", "fpn_channels": 256, "norm": "frozen_bn", "stride_in_1x1": True, "roi.fc_dim": 32}
CONVERT = {"data.canvas": 64, "data.min_size": 64, "data.max_size": 64, "model.roi.fc_dim": 32,
           "model.mask.conv_dim": 8, "model.mask.num_convs": 2}
PREDICTORS = ("roi_heads/box_predictor/cls_score", "roi_heads/box_predictor/bbox_pred", "roi_heads/mask_head/predictor")


def d2_name(path: str) -> str:
  name = path
  for pattern, replacement in TO_D2:
    name = re.sub(pattern, replacement, name)
  name = name.replace("/", ".")
  assert detectron2.our_path(name) == path
  return name


def d2_layout(name: str, array: np.ndarray) -> np.ndarray:
  """An array of our shape in Detectron2's shape (values reordered, not converted: they are random)."""
  if name.endswith("deconv.weight"):
    return array.transpose(2, 3, 0, 1)
  return array.transpose(3, 2, 0, 1) if array.ndim == 4 else array.T


def random_variables(config, seed=1):
  """{our path: array} for a model of ``config``: kernels He-normal, biases 0, frozen-BN statistics random."""
  rng = np.random.default_rng(seed)
  out = {}
  for path, variable in nnx.to_flat_state(nnx.state(nnx.eval_shape(lambda: build_model(config)))):
    shape = variable.shape
    if isinstance(variable, nnx.BatchStat):
      array = rng.uniform(0.5, 1.5, shape)
    else:
      array = rng.standard_normal(shape) * np.sqrt(2 / np.prod(shape[:-1])) if len(shape) > 1 else np.zeros(shape)
    out["/".join(map(str, path))] = array.astype(np.float32)
  return out


def converted_d2(tmp_path, make_config, **model) -> str:
  """Workdir of a tiny 3-class Detectron2 Mask R-CNN (the tiny preset with SOURCE and ``model``: ResNet-18,
  width 8) converted by the CLI."""
  config = make_config(**SOURCE, **model)
  config.num_classes = 3
  weights = {d2_name(path): d2_layout(d2_name(path), array) for path, array in random_variables(config).items()}
  src, out = tmp_path / "model_final.pkl", tmp_path / "converted"
  src.write_bytes(pickle.dumps({"model": weights, "__author__": "test"}))
  assert convert_cli(["detectron2", str(src), "--out", str(out),
                      *(f"--config.{key}={value}" for key, value in CONVERT.items())]) == 0
  return str(out)


@pytest.fixture(scope="module")
def converted(tmp_path_factory, make_config):
  """Workdir of a tiny 3-class Detectron2 FPN Mask R-CNN."""
  return converted_d2(tmp_path_factory.mktemp("d2"), make_config)


def finetune_config(make_config, shapes_data, workdir, **model):
  """The tiny preset on the shapes data (4 classes, not the import's 3), RGB, GroupNorm, starting from
  ``workdir``; three steps, stem and res2 frozen."""
  config = make_config(**{"head_norm": "", "fpn_channels": 256, "freeze_at": 2, **model})
  config.num_classes, config.class_names = 0, ()
  config.data.data_dir, config.data.name = shapes_data
  config.data.batch_size = 2
  t = config.train
  t.steps, t.warmup_steps, t.log_every, t.eval_every, t.init_from = 3, 0, 1, -1, workdir
  return config


def flat(state) -> dict:
  return {"/".join(map(str, path)): np.asarray(v[...]) for path, v in nnx.to_flat_state(state)}


def test_fine_tuning_loads_the_import_freezes_stages_and_saves_frozen_bn(converted, make_config, shapes_data, tmp_path,
                                                                        caplog):
  caplog.set_level(logging.INFO, logger="absl")  # absl's own level turns WARNING once flags are parsed
  imported = read_variables(converted)
  config = finetune_config(make_config, shapes_data, converted)
  state, metrics = loop.train(config, str(tmp_path))

  messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"init_from {converted}")]
  fields = [m for m in messages if "its weights need" in m]
  assert len(fields) == 1
  assert "model.norm group -> frozen_bn" in fields[0] and "model.input_format RGB -> BGR" in fields[0]
  shapes_line = [m for m in messages if "shapes differ" in m]
  assert len(shapes_line) == 1 and all(p in shapes_line[0] for p in PREDICTORS)
  assert "(32, 4) -> (32, 5)" in shapes_line[0]                     # cls_score: 3 + 1 -> 4 + 1 classes
  assert np.isfinite(metrics["loss"])

  params, batch_stats = flat(state["params"]), flat(state["batch_stats"])
  assert batch_stats.keys() == imported["batch_stats"].keys()
  for path, value in batch_stats.items():                          # loaded, and never changed
    np.testing.assert_array_equal(value, imported["batch_stats"][path], err_msg=path)
  frozen = [p for p in params if re.match(r"backbone/bottom_up/(stem|res2)/", p)]
  trained = [p for p in params if p.startswith(("backbone/bottom_up/res3/", "backbone/fpn_", "roi_heads/box_head/"))]
  assert frozen and trained
  for path in frozen:                                                # loaded, and bit-identical after 3 steps
    np.testing.assert_array_equal(params[path], imported["params"][path], err_msg=path)
  for path in trained:                                               # loaded (same shape), then trained
    assert params[path].shape == imported["params"][path].shape
    assert not np.array_equal(params[path], imported["params"][path]), path

  model = mrcnn_jax.load(str(tmp_path))                             # the fine-tuned model, exactly
  for path, value in {**flat(nnx.state(model, nnx.Param)), **flat(nnx.state(model, nnx.BatchStat))}.items():
    np.testing.assert_array_equal(value, {**params, **batch_stats}[path], err_msg=path)
  assert model.config.model.input_format == "BGR" and model.config.num_classes == 4


C2_LAYERS = {"conv1": "branch2a", "conv2": "branch2b", "shortcut": "branch1"}
C2_LEAVES = {"conv/kernel": "w", "norm/scale": "bn_s", "norm/bias": "bn_b"}


def c2_name(path: str) -> str:
  """A ResNet-18's path in our ResNet -> Caffe2's name: ``res2/0/conv1/norm/scale`` -> ``res2_0_branch2a_bn_s``."""
  parts = path.split("/")
  leaf = C2_LEAVES["/".join(parts[-2:])]
  if parts[0] == "stem":
    return "conv1_w" if leaf == "w" else f"res_conv1_{leaf}"
  return f"{parts[0]}_{parts[1]}_{C2_LAYERS[parts[2]]}_{leaf}"


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory, make_config):
  """(workdir, Caffe2 weights) of a tiny ImageNet ResNet-18 (width 8) in Caffe2's names, converted."""
  resnet = make_config(norm="frozen_bn", stride_in_1x1=True)
  weights = {c2_name(path[len("backbone/bottom_up/"):]): array.transpose(3, 2, 0, 1) if array.ndim == 4 else array
             for path, array in random_variables(resnet, seed=2).items()
             if path.startswith("backbone/bottom_up/") and not path.endswith(("/mean", "/var"))}  # BN folded
  weights.update(fc1000_w=np.ones((10, 64), np.float32), fc1000_b=np.ones(10, np.float32),
                 res2_0_branch2a_w_momentum=np.ones(1, np.float32), conv1_b=np.full(8, 1e-9, np.float32))
  assert {"conv1_w", "res_conv1_bn_s", "res2_0_branch2a_w", "res2_0_branch2a_bn_b", "res3_0_branch1_w"} <= set(weights)
  src, out = tmp_path_factory.mktemp("c2") / "R-18.pkl", tmp_path_factory.mktemp("imagenet")
  src.write_bytes(pickle.dumps(weights, protocol=2))
  assert convert_cli(["detectron2", str(src), "--out", str(out)]) == 0
  return str(out), weights


def test_imagenet_backbone_converts_to_a_resnet_only_workdir(imagenet):
  workdir, weights = imagenet
  config = load_config(workdir)
  m = config.model
  assert config.pretrained.backbone_only and (m.backbone, m.width, m.head) == ("resnet18", 8, "fpn")
  assert (m.norm, m.stride_in_1x1, m.input_format) == ("frozen_bn", True, "BGR")
  assert (m.pixel_mean, m.pixel_std) == ((103.53, 116.28, 123.675), (1.0, 1.0, 1.0))
  saved = read_variables(workdir)
  assert all(p.startswith("backbone/bottom_up/") for kind in saved.values() for p in kind)
  stats = saved["batch_stats"]
  np.testing.assert_array_equal(stats["backbone/bottom_up/res2/0/conv1/norm/scale"], weights["res2_0_branch2a_bn_s"])
  np.testing.assert_array_equal(stats["backbone/bottom_up/stem/norm/bias"], weights["res_conv1_bn_b"])
  np.testing.assert_array_equal(stats["backbone/bottom_up/res3/0/shortcut/norm/mean"], 0)
  np.testing.assert_array_equal(stats["backbone/bottom_up/res5/1/conv2/norm/var"], np.float32(1) - np.float32(1e-5))
  np.testing.assert_array_equal(saved["params"]["backbone/bottom_up/stem/conv/kernel"],
                                weights["conv1_w"].transpose(2, 3, 1, 0))
  with pytest.raises(UserError, match="an ImageNet backbone, not a model: train from it with"):
    mrcnn_jax.load(workdir)


def test_imagenet_backbone_lands_on_a_c4_models_resnet(imagenet, make_config, shapes_data, caplog):
  caplog.set_level(logging.INFO, logger="absl")  # absl's own level turns WARNING once flags are parsed
  workdir, _ = imagenet
  config = finetune_config(make_config, shapes_data, workdir, head="c4")
  config.num_classes = 4
  init_from.take_fields(config, workdir)
  model = nnx.eval_shape(lambda: build_model(config))
  fresh = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), {"params": nnx.state(model, nnx.Param),
                                                             "batch_stats": nnx.state(model, nnx.BatchStat)})
  loaded = {kind: flat(state) for kind, state in init_from.load(workdir, config, fresh).items()}
  saved = read_variables(workdir)
  resnet = {"backbone/res4/1/conv2/conv/kernel": "backbone/bottom_up/res4/1/conv2/conv/kernel",
            "roi_heads/res5/0/shortcut/conv/kernel": "backbone/bottom_up/res5/0/shortcut/conv/kernel"}
  for ours, theirs in resnet.items():
    np.testing.assert_array_equal(loaded["params"][ours], saved["params"][theirs])
  np.testing.assert_array_equal(loaded["batch_stats"]["backbone/stem/norm/scale"],
                                saved["batch_stats"]["backbone/bottom_up/stem/norm/scale"])
  assert not loaded["params"]["roi_heads/box_predictor/cls_score/kernel"].any()
  messages = [r.getMessage() for r in caplog.records]
  assert f"init_from {workdir}: loaded 100 of its 100 tensors" in messages
  assert f"init_from {workdir}: initialised fresh, not in it: RPN, box head, mask head (14 tensors)" in messages


def test_a_checkpoint_that_is_neither_model_nor_backbone_is_refused(tmp_path, capsys):
  src = tmp_path / "other.pkl"
  src.write_bytes(pickle.dumps({"layer1.0.conv1.weight": np.zeros((1, 1, 1, 1), np.float32)}))
  assert convert_cli(["detectron2", str(src), "--out", str(tmp_path / "w")]) == 2
  assert "neither a Detectron2 Mask or Keypoint R-CNN" in capsys.readouterr().err


C4 = {"head": "c4", "roi.pooler_resolution": 14}
RESNEXT = {"backbone": "resnet50", "num_groups": 4, "width_per_group": 4}
# torchvision's v2 heads at its own widths (FPN, box-head and mask-head convs 256; the box head's FC 32 here).
TV_V2 = {"head_norm": "frozen_bn", "rpn.num_convs": 2, "roi.num_convs": 4, "roi.num_fc": 1, "mask.conv_dim": 256,
         "mask.num_convs": 4}


def converted_tv_v2(tmp_path) -> str:
  """Workdir of a tiny torchvision maskrcnn_resnet50_fpn_v2 (ResNet-18 of width 8, FC 32, 2 classes and the
  background; random weights, BN statistics mean 0, variance 1) converted by the CLI."""
  rng = np.random.default_rng(3)
  weights = {name: (rng.uniform(0.5, 1.5, shape) if name.endswith("running_var") else
                    rng.standard_normal(shape) * (np.sqrt(2 / np.prod(shape[1:])) if len(shape) > 1 else 0.1))
             for name, shape in tv_v2_shapes(3, "resnet18", 8, fc_dim=32).items()}
  src, out = tmp_path / "v2.pth", tmp_path / "converted"
  write_torch_zip(src, {name: tensor(np.asarray(array, np.float32)) for name, array in weights.items()})
  sizes = [f"--config.data.{field}=64" for field in ("canvas", "min_size", "max_size")]
  assert convert_cli(["torchvision", str(src), "--out", str(out), "--config.model.roi.fc_dim=32", *sizes]) == 0
  return str(out)


@pytest.mark.parametrize("family", ["detectron2 C4", "detectron2 ResNeXt-FPN", "torchvision v2"])
def test_fine_tuning_from_each_zoo_family(family, make_config, shapes_data, tmp_path, caplog):
  """Every variable of the model is in the import and all but the class-specific predictors load; two
  steps train."""
  caplog.set_level(logging.INFO, logger="absl")
  model = {"detectron2 C4": C4, "detectron2 ResNeXt-FPN": RESNEXT, "torchvision v2": TV_V2}[family]
  workdir = (converted_tv_v2(tmp_path) if family == "torchvision v2" else
             converted_d2(tmp_path, make_config, **model))
  config = finetune_config(make_config, shapes_data, workdir, **model)
  config.train.steps = 2
  _, metrics = loop.train(config, str(tmp_path / "run"))
  assert np.isfinite(metrics["loss"])
  messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"init_from {workdir}")]
  assert not [m for m in messages if "not in it" in m], messages
  misshapen = [m for m in messages if "shapes differ" in m]                    # 3 -> 4 classes
  assert len(misshapen) == 1 and misshapen[0].count(" -> ") == 2 * len(PREDICTORS), messages
