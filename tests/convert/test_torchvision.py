"""torchvision -> mrcnn_jax: names (today's and before torchvision 0.13), layouts, classes read from the
predictor's shape, the config, ResNet classifiers as backbone-only workdirs, and clear refusals. State
dicts are synthetic, in torchvision's names and shapes (``tv_state_dicts``); the end-to-end parity test
is test_torchvision_parity.py."""

import json

import jax
import numpy as np
import pytest
from flax import nnx
from torch_zip_writer import tensor, write_torch_zip
from tv_state_dicts import resnet_shapes, tv_shapes

import mrcnn_jax
from mrcnn_jax.checkpoints import load_config
from mrcnn_jax.convert import torchvision
from mrcnn_jax.convert.__main__ import main
from mrcnn_jax.data.coco_classes import COCO_CLASSES
from mrcnn_jax.errors import UserError
from mrcnn_jax.train.checkpoint import restore_variables


def zero_weights(shapes):
  return {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}


def our_shapes(config, prefix=""):
  """{our path: shape} of the model's variables under ``prefix`` (abstract: nothing is initialised)."""
  model = nnx.eval_shape(lambda: mrcnn_jax.build_model(config))
  flat = (("/".join(map(str, path)), v.shape) for path, v in nnx.to_flat_state(nnx.state(model)))
  return {key: shape for key, shape in flat if key.startswith(prefix)}


@pytest.fixture(scope="module")
def shapes():
  return our_shapes(torchvision.torchvision_config(zero_weights(tv_shapes())))


@pytest.mark.parametrize("name,path", [
    ("backbone.body.conv1.weight", "backbone/bottom_up/stem/conv/kernel"),
    ("backbone.body.bn1.running_var", "backbone/bottom_up/stem/norm/var"),
    ("backbone.body.layer1.0.conv3.weight", "backbone/bottom_up/res2/0/conv3/conv/kernel"),
    ("backbone.body.layer2.3.bn2.weight", "backbone/bottom_up/res3/3/conv2/norm/scale"),
    ("backbone.body.layer4.0.downsample.0.weight", "backbone/bottom_up/res5/0/shortcut/conv/kernel"),
    ("backbone.body.layer3.0.downsample.1.running_mean", "backbone/bottom_up/res4/0/shortcut/norm/mean"),
    ("backbone.fpn.inner_blocks.0.0.weight", "backbone/fpn_lateral2/kernel"),
    ("backbone.fpn.inner_blocks.3.bias", "backbone/fpn_lateral5/bias"),
    ("backbone.fpn.layer_blocks.2.0.bias", "backbone/fpn_output4/bias"),
    ("rpn.head.conv.0.0.weight", "proposal_generator/rpn_head/conv/kernel"),
    ("rpn.head.conv.bias", "proposal_generator/rpn_head/conv/bias"),
    ("rpn.head.cls_logits.weight", "proposal_generator/rpn_head/objectness_logits/kernel"),
    ("rpn.head.bbox_pred.bias", "proposal_generator/rpn_head/anchor_deltas/bias"),
    ("roi_heads.box_head.fc6.weight", "roi_heads/box_head/fc1/kernel"),
    ("roi_heads.box_head.fc7.bias", "roi_heads/box_head/fc2/bias"),
    ("roi_heads.box_predictor.bbox_pred.weight", "roi_heads/box_predictor/bbox_pred/kernel"),
    ("roi_heads.mask_head.0.0.weight", "roi_heads/mask_head/mask_fcn1/kernel"),
    ("roi_heads.mask_head.mask_fcn4.bias", "roi_heads/mask_head/mask_fcn4/bias"),
    ("roi_heads.mask_predictor.conv5_mask.weight", "roi_heads/mask_head/deconv/kernel"),
    ("roi_heads.mask_predictor.mask_fcn_logits.bias", "roi_heads/mask_head/predictor/bias"),
    ("roi_heads.keypoint_head.0.weight", "roi_heads/keypoint_head/conv_fcn1/kernel"),
    ("roi_heads.keypoint_head.14.bias", "roi_heads/keypoint_head/conv_fcn8/bias"),
    ("roi_heads.keypoint_predictor.kps_score_lowres.weight", "roi_heads/keypoint_head/score_lowres/kernel"),
])
def test_names(name, path):
  assert torchvision.our_path(name) == path


@pytest.mark.parametrize("old_names", [False, True])
def test_every_tensor_lands_and_every_variable_is_filled(shapes, old_names):
  weights = zero_weights(tv_shapes(old_names=old_names))
  weights["backbone.body.bn1.num_batches_tracked"] = np.zeros((), np.int64)  # BatchNorm2d's counter: dropped
  converted = torchvision.convert_weights(weights, shapes)
  assert len(converted) == len(shapes) == len(weights) - 1


def test_keypoint_rcnn_converts_whole_with_torchvisions_keypoint_score():
  weights = zero_weights(tv_shapes(num_classes=2, num_keypoints=17))  # background + person
  config = torchvision.torchvision_config(weights)
  k = config.model.keypoint
  assert (k.num_keypoints, k.num_convs, k.conv_dim, k.score) == (17, 8, 512, "logit")
  assert config.class_names == ("person",) and not config.model.mask_on and len(config.data.keypoint_skeleton) == 19
  shapes = our_shapes(config)
  assert len(torchvision.convert_weights(weights, shapes)) == len(shapes) == len(weights)
  weight = np.arange(512 * 17 * 16, dtype=np.float32).reshape(512, 17, 4, 4)  # ConvTranspose2d [in, out, kh, kw]
  ours = torchvision.to_ours("roi_heads.keypoint_predictor.kps_score_lowres.weight", weight)
  np.testing.assert_array_equal(ours, weight.transpose(2, 3, 0, 1))  # Deconv4x4's [kh, kw, in, out]


def test_box_predictor_drops_the_background_rows_and_keeps_class_order():
  weight = np.arange(5 * 4 * 2, dtype=np.float32).reshape(20, 2)   # [(K+1)*4, in], K = 4
  ours = torchvision.to_ours("roi_heads.box_predictor.bbox_pred.weight", weight, (1, 2, 3, 4))
  np.testing.assert_array_equal(ours, weight[4:].T)                # [in, K*4]: class 1's dx first
  bias = torchvision.to_ours("roi_heads.box_predictor.bbox_pred.bias", np.arange(20, dtype=np.float32), (1, 2, 3, 4))
  np.testing.assert_array_equal(bias, np.arange(4, 20))
  cls = torchvision.to_ours("roi_heads.box_predictor.cls_score.bias", np.arange(5, dtype=np.float32), (1, 2, 3, 4))
  np.testing.assert_array_equal(cls, np.arange(5))                 # background stays first
  logits = np.arange(5, dtype=np.float32).reshape(5, 1, 1, 1) * np.ones((5, 3, 1, 1), np.float32)
  ours = torchvision.to_ours("roi_heads.mask_predictor.mask_fcn_logits.weight", logits, (1, 2, 3, 4))
  np.testing.assert_array_equal(ours[0, 0, 0], [1, 2, 3, 4])       # [1,1,in,K]: no background channel


def test_coco_layout_keeps_the_80_used_category_slots():
  """91 slots = background + COCO category ids 1..90; id 13 (stop sign) is our class 12."""
  weights = zero_weights(tv_shapes(num_classes=91))
  weights["roi_heads.box_predictor.bbox_pred.bias"] = np.repeat(np.arange(91, dtype=np.float32), 4)
  weights["roi_heads.box_predictor.cls_score.bias"] = np.arange(91, dtype=np.float32)
  config = torchvision.torchvision_config(weights)
  assert config.num_classes == 80 and config.class_names == COCO_CLASSES
  assert config.model.roi.candidates_per_image == 80_000
  converted = torchvision.convert_weights(weights, our_shapes(config))
  slots = converted["roi_heads/box_predictor/bbox_pred/bias"].reshape(80, 4)[:, 0]
  assert slots[COCO_CLASSES.index("stop sign")] == 13 and slots[-1] == 90 and 12 not in slots
  np.testing.assert_array_equal(converted["roi_heads/box_predictor/cls_score/bias"][1:], slots)


def test_config_reproduces_torchvisions_inference_settings():
  config = torchvision.torchvision_config(zero_weights(tv_shapes()), {"data.canvas": 1024, "data.max_size": 1024})
  m = config.model
  assert (config.num_classes, config.class_names) == (4, ("class_1", "class_2", "class_3", "class_4"))
  assert (m.backbone, m.norm, m.head_norm, m.stride_in_1x1, m.input_format) == ("resnet50", "frozen_bn", "", False, "RGB")
  np.testing.assert_allclose(m.pixel_mean, np.array([0.485, 0.456, 0.406]) * 255)
  np.testing.assert_allclose(m.pixel_std, np.array([0.229, 0.224, 0.225]) * 255)
  assert (m.round_anchors, m.rpn.min_size, m.rpn.pre_nms_topk_test, m.rpn.post_nms_topk_test) == (True, 1e-3, 1000, 1000)
  assert (m.roi.aligned, m.roi.sampling_ratio, m.roi.min_box_size, m.roi.candidates_per_image) == (False, 2, 1e-2, 4000)
  assert (m.roi.score_threshold, m.roi.nms_threshold, m.roi.detections_per_image) == (0.05, 0.5, 100)
  assert m.mask.paste_border == "torchvision"
  assert (config.data.canvas, config.data.min_size, config.data.max_size) == (1024, 800, 1024)
  assert (config.data.size_divisibility, config.data.resize, m.padding) == (32, "torchvision", "normalized")
  with pytest.raises(UserError, match=r"max_size \(1333\) must be <= the longest side of config.data.canvas \(512\)"):
    torchvision.torchvision_config(zero_weights(tv_shapes()), {"data.canvas": 512})


@pytest.mark.parametrize("change,message", [
    (lambda w: w.pop("roi_heads.box_head.fc7.bias"), "1 missing: roi_heads/box_head/fc2/bias"),
    (lambda w: w.update({"roi_heads.box_head.fc8.weight": np.zeros((2, 2))}), "1 unexpected: roi_heads.box_head.fc8"),
    (lambda w: w.update({"backbone.fpn.layer_blocks.1.0.bias": np.zeros(3)}),
     r"1 misshapen: backbone.fpn.layer_blocks.1.0.bias .* \(3,\) vs \(256,\)"),
])
def test_mismatches_are_listed(shapes, change, message):
  weights = zero_weights(tv_shapes())
  change(weights)
  with pytest.raises(UserError, match=message):
    torchvision.convert_weights(weights, shapes)


@pytest.mark.parametrize("weights,message", [
    ({"backbone.bottom_up.stem.conv1.weight": np.zeros(1)}, "a Detectron2 checkpoint: convert it with `detectron2`"),
    ({"model.layer.weight": np.zeros(1)}, "neither a torchvision Mask R-CNN"),
    ({k: np.zeros(1) for k in tv_shapes() if not k.startswith("roi_heads.mask")},
     "neither roi_heads.mask_predictor.mask_fcn_logits.weight nor roi_heads.keypoint_predictor"),
    ({"conv1.weight": np.zeros(1), "layer1.0.conv1.weight": np.zeros(1), "layer1.1.conv1.weight": np.zeros(1),
      "fc.weight": np.zeros(1)}, r"basic blocks, \(2, 0, 0, 0\) in res2..res5: none of"),
])
def test_other_checkpoints_are_refused(tmp_path, weights, message):
  write_torch_zip(tmp_path / "w.pth", {k: tensor(v) for k, v in weights.items()})
  with pytest.raises(UserError, match=message):
    torchvision.convert(str(tmp_path / "w.pth"), str(tmp_path / "out"))


def test_resnet_classifier_becomes_a_backbone_only_workdir(tmp_path, capsys):
  """A resnet18 ImageNet classifier (float16 storages to keep the file small): only its trunk, at
  backbone/bottom_up in the r50_fpn_coco config with torchvision's input; mrcnn_jax.load refuses it."""
  rng = np.random.default_rng(0)
  weights = {name: rng.standard_normal(shape).astype(np.float16)
             for name, shape in {**resnet_shapes("resnet18"), "fc.weight": (1000, 512), "fc.bias": (1000,)}.items()}
  write_torch_zip(tmp_path / "resnet18.pth", {k: tensor(v) for k, v in weights.items()})
  assert main(["torchvision", str(tmp_path / "resnet18.pth"), "--out", str(tmp_path / "w")]) == 0
  assert "an ImageNet resnet18 (for --config.train.init_from=" in capsys.readouterr().out
  saved = json.loads((tmp_path / "w" / "config.json").read_text())
  assert saved["pretrained"]["backbone_only"] and saved["pretrained"]["source"] == "torchvision"
  assert (saved["model"]["backbone"], saved["model"]["norm"], saved["model"]["freeze_at"]) == ("resnet18", "frozen_bn", 2)
  assert saved["num_classes"] == 80 and saved["data"]["canvas"] == 1024  # r50_fpn_coco's
  abstract = nnx.eval_shape(lambda: mrcnn_jax.build_model(load_config(str(tmp_path / "w"))))
  trunk = lambda kind: nnx.state(abstract, nnx.All(kind, nnx.PathContains("bottom_up")))
  restored = restore_variables(str(tmp_path / "w"), {"params": trunk(nnx.Param), "batch_stats": trunk(nnx.BatchStat)})
  bottom_up = restored["params"]["backbone"]["bottom_up"]
  np.testing.assert_array_equal(bottom_up["stem"]["conv"]["kernel"][...],
                                weights["conv1.weight"].astype(np.float32).transpose(2, 3, 1, 0))
  var = restored["batch_stats"]["backbone"]["bottom_up"]["res5"][1]["conv2"]["norm"]["var"][...]
  np.testing.assert_array_equal(var, weights["layer4.1.bn2.running_var"].astype(np.float32))
  assert len(jax.tree.leaves(restored)) == len(weights) - 2     # all but fc, nothing else
  with pytest.raises(UserError, match="holds an ImageNet backbone, not a model"):
    mrcnn_jax.load(str(tmp_path / "w"))
