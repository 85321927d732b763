"""Detectron2 Mask R-CNN checkpoints (``mask_rcnn_R_{50,101}_{FPN,C4}_{1x,3x}``,
``mask_rcnn_X_101_32x8d_FPN_3x``), Keypoint R-CNN checkpoints (``keypoint_rcnn_R_50_FPN_3x``) and its
ImageNet backbones (``ImageNetPretrained/MSRA/R-50.pkl``) -> a mrcnn_jax workdir.

    python -m mrcnn_jax.convert detectron2 model_final.pkl --out runs/d2 [--config.data.canvas=512 ...]
    python -m mrcnn_jax.convert detectron2 R-50.pkl --out runs/r50_imagenet   # then train.init_from

Which of the two a file is, its names say: a Mask R-CNN's start with ``backbone.``, ``roi_heads.``, ...;
an ImageNet ResNet's are Caffe2's (``conv1_w``, ``res_conv1_bn_s``, ``res2_0_branch2a_w``, ...), renamed
to Detectron2's by ``C2_RULES`` as Detectron2's loader does. Its BatchNorm is folded into the ``_bn_s``
scale and ``_bn_b`` bias; Detectron2's FrozenBatchNorm2d adds mean 0 and variance 1 - eps, so do we.
The workdir of a backbone holds the ResNet alone, at its path in an FPN model (``backbone/bottom_up``),
and ``config.pretrained.backbone_only`` (see ``mrcnn_jax.train.init_from``).

A C4 model (``roi_heads.res5.*``: RPN on res4, ``Res5ROIHeads`` with res5 inside the RoI heads and the
0-conv mask head on its 7x7 output) keeps its ResNet at ``backbone.{stem,res2..res4}`` (ours
``backbone/...``, no ``bottom_up``) and ``roi_heads.res5``.

Names: our tree follows Detectron2's module names, so ``NAME_RULES`` (regex substitutions on the dotted
name) turn every source name into our path. Layouts (``to_ours``): conv OIHW -> HWIO; linear [out,in] ->
[in,out]; ConvTranspose2d [in,out,kh,kw] -> ``Deconv2x`` / ``Deconv4x4`` [kh,kw,in,out]; FrozenBN weight, bias,
running_mean, running_var -> FrozenBatchNorm scale, bias, mean, var; ``fc1``'s input columns from the
(C,7,7) flatten of NCHW RoI features to our NHWC (7,7,C) flatten; ``cls_score``'s background moved from
the last output to index 0. Already the same: class-specific ``bbox_pred`` rows (class-major, K*4, no
background), RPN outputs (anchor-major, deltas a*4+(dx,dy,dw,dh)) and the anchors of a cell (sizes x
ratios, ratios 0.5, 1, 2: ``ops.anchors``).

``detectron2_config`` is the inference config that reproduces Detectron2's (meta.json of the oracle in
``../shared/oracles/detectron2_r50_fpn`` cites each fact): the input and ResNet of ``MSRA`` (``RESNEXT``
for a ResNeXt), test sizes 800 / 1333, RoIAlign's adaptive sampling grid, every (proposal, class)
candidate to NMS, the grid_sample paste. The rest (anchors, RPN and RoI-head thresholds, level assignment, box coder) is the
base config's already. A C4 model adds ``C4``'s settings. The ResNet's depth, width and groups are read
from the weights (``resnet_fields``), and so are the branches: a mask head (``roi_heads.mask_head``) and a
keypoint head (``roi_heads.keypoint_head``: its number of keypoints, convs and their width; 17 keypoints
on one class are COCO's persons, with their names, flip map, OKS sigmas and skeleton;
``../shared/oracles/detectron2_kp_r50_fpn`` for the facts).
"""

from __future__ import annotations

import re

import ml_collections
import numpy as np

from mrcnn_jax import configs
from mrcnn_jax.convert import common
from mrcnn_jax.data import canvas as canvas_lib
from mrcnn_jax.data.coco_classes import COCO_CLASSES
from mrcnn_jax.errors import UserError

# Applied in order to a Detectron2 name; the result, "." -> "/", is our path.
NAME_RULES = (
    (r"^(backbone\.(?:bottom_up\.)?stem)\.conv1\.", r"\1."),
    # ResNet convs: an FPN's (backbone.bottom_up.*), a C4's (backbone.*, roi_heads.res5.*)
    (r"^((?:backbone\.(?:bottom_up\.)?|roi_heads\.)(?:stem|res\d\.\d+\.\w+))\.weight$", r"\1.conv.kernel"),
    *common.NORM_AND_KERNEL_RULES,
)
# Non-persistent buffers older checkpoints saved; our config recomputes them.
IGNORED = re.compile(r"^(pixel_mean|pixel_std|proposal_generator\.anchor_generator\.cell_anchors\.\d+)$")
FC1 = "roi_heads.box_head.fc1.weight"
CLS_SCORE = "roi_heads.box_predictor.cls_score."
MASK_PREDICTOR = "roi_heads.mask_head.predictor.weight"
KEYPOINTS = "roi_heads.keypoint_head.score_lowres.weight"  # [512, K, 4, 4]
TRANSPOSED = re.compile(r"(mask_head\.deconv|keypoint_head\.score_lowres)\.weight$")  # ConvTranspose2d
FPN_CHANNELS = 256
# Caffe2 names of an ImageNet ResNet -> Detectron2's, applied in order; C2_IGNORED are dropped, as
# Detectron2's model has no place for them: the ImageNet classifier, SGD momenta, the stem's bias
# (MSRA's R-50.pkl has one, of about 1e-9).
C2_RULES = (
    (r"_bn_s$", ".norm.weight"), (r"_bn_b$", ".norm.bias"), (r"_w$", ".weight"),
    (r"^(?:res_)?conv1\.", "stem.conv1."),
    (r"^(res\d)_(\d+)_branch1\.", r"\1.\2.shortcut."),
    (r"^(res\d)_(\d+)_branch2([abc])\.", lambda m: f"{m[1]}.{m[2]}.conv{'abc'.index(m[3]) + 1}."),
    (r"^", "backbone.bottom_up."),
)
C2_IGNORED = re.compile(r"^fc1000_[wb]$|_momentum$|^conv1_b$")
C2_STEM = "res_conv1_bn_s"                 # a name that only an ImageNet ResNet in Caffe2's names has
FROZEN_BN_EPS = 1e-5                       # Detectron2's FrozenBatchNorm2d's, and resnet.FrozenBatchNorm's
# The input and ResNet of Detectron2's MSRA weights (and so of its model zoo): BGR, mean (103.53,
# 116.28, 123.675), std 1, stride in the bottlenecks' 1x1 convs, frozen BN, stem and res2 frozen.
# A C4 model's inference (mask_rcnn_R_50_C4_3x.yaml; meta.json of the oracle in
# ../shared/oracles/detectron2_zoo/r50_c4 cites each fact): RPN and 14x14 RoIAlign on res4, 6000
# proposals before NMS; the single map's adaptive grid capped exactly for every RoI on the canvas.
C4 = {"model.head": "c4", "model.roi.pooler_resolution": 14, "model.rpn.pre_nms_topk_test": 6000,
      "model.roi.max_sampling_ratio": 0}
MSRA = {"model.norm": "frozen_bn", "model.freeze_at": 2, "model.stride_in_1x1": True, "model.input_format": "BGR",
        "model.pixel_mean": (103.53, 116.28, 123.675), "model.pixel_std": (1.0, 1.0, 1.0)}
# Its ResNeXts (FAIR's ImageNet weights, mask_rcnn_X_101_32x8d_FPN_3x.yaml; meta.json of the oracle in
# ../shared/oracles/detectron2_zoo/x101_fpn): the stride in the 3x3 convs, the pixels' std.
RESNEXT = {"model.stride_in_1x1": False, "model.pixel_std": (57.375, 57.120, 58.395)}


def our_path(name: str) -> str:
  """Detectron2's name -> our path: ``...res2.0.conv1.norm.running_var`` -> ``.../res2/0/conv1/norm/var``."""
  return common.apply_rules(name, NAME_RULES)


def to_ours(name: str, array: np.ndarray) -> np.ndarray:
  """One Detectron2 tensor in our layout (see the module docstring)."""
  if name.startswith(CLS_SCORE):               # [K+1, in] / [K+1]: background last -> first
    array = np.roll(array, 1, axis=0)
  if name == FC1:
    return common.fc_after_nchw_flatten(array, FPN_CHANNELS)
  return common.pytorch_layout(array, transposed=bool(TRANSPOSED.search(name)))


def from_caffe2(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """An ImageNet ResNet in Caffe2's names (``res2_0_branch2a_bn_s``) -> Detectron2's names in a Mask
  R-CNN (``backbone.bottom_up.res2.0.conv1.norm.weight``), with the statistics of its frozen BN."""
  out = {}
  for name, array in weights.items():
    if C2_IGNORED.search(name):
      continue
    for pattern, replacement in C2_RULES:
      name = re.sub(pattern, replacement, name)
    out[name] = array
    if name.endswith(".norm.weight"):
      out[name.replace(".weight", ".running_mean")] = np.zeros_like(array)
      out[name.replace(".weight", ".running_var")] = np.ones_like(array) - np.float32(FROZEN_BN_EPS)
  return out


def convert_weights(weights: dict[str, np.ndarray], shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
  """Detectron2 state dict -> {our path: float32 array} for our variables' ``shapes`` {path: shape}
  (``common.convert_weights``: UserError for what is unexpected, missing or misshapen)."""
  return common.convert_weights(weights, shapes, rename=lambda name: None if IGNORED.match(name) else our_path(name),
                                to_ours=to_ours, what="a Detectron2 Mask R-CNN or ResNet")


def resnet_fields(weights: dict[str, np.ndarray]) -> dict:
  """The ResNet's fields (``common.resnet_fields``) and input (``MSRA``, or ``RESNEXT``'s for a ResNeXt) of
  ``weights`` (Detectron2's names)."""
  fields = common.resnet_fields({our_path(name): array for name, array in weights.items()})
  return {**MSRA, **fields, **(RESNEXT if fields["model.num_groups"] > 1 else {})}


def backbone_config(weights: dict[str, np.ndarray], overrides: dict | None = None) -> ml_collections.ConfigDict:
  """The R-CNN config for training from the ImageNet ResNet ``weights`` (Detectron2's names, see
  ``from_caffe2``): r50_fpn_coco with its ResNet and input (``resnet_fields``) and ``pretrained.backbone_only``."""
  config = configs.get("r50_fpn_coco")
  return configs.override(config, {**resnet_fields(weights), "pretrained.backbone_only": True,
                                   **(overrides or {})})


def detectron2_config(weights: dict[str, np.ndarray], overrides: dict | None = None) -> ml_collections.ConfigDict:
  """Our config for a Detectron2 FPN or C4 Mask R-CNN's, or FPN Keypoint R-CNN's, ``weights`` (classes,
  head, depth, width and branches read from them), with Detectron2's inference settings, then
  ``overrides`` ({dotted field: value})."""
  if f"{CLS_SCORE}weight" not in weights or (MASK_PREDICTOR not in weights and KEYPOINTS not in weights):
    raise UserError("the checkpoint is neither a Detectron2 Mask or Keypoint R-CNN (it has no roi_heads."
                    "box_predictor.cls_score, or neither roi_heads.mask_head.predictor nor roi_heads."
                    f"keypoint_head.score_lowres) nor an ImageNet ResNet in Caffe2's names (no {C2_STEM})")
  c4 = any(name.startswith("roi_heads.res5.") for name in weights)
  if "backbone.res5.0.conv1.weight" in weights and not c4:
    raise UserError("a DC5 / C5 Mask R-CNN (res5 in the backbone, no FPN): only Detectron2's FPN and C4 models "
                    "are converted")
  num_classes = weights[f"{CLS_SCORE}weight"].shape[0] - 1
  config = configs.get("base")
  configs.override(config, {
      "num_classes": num_classes,
      "class_names": COCO_CLASSES if num_classes == len(COCO_CLASSES) else
                     tuple(f"class_{k}" for k in range(1, num_classes + 1)),
      "model.mask_on": MASK_PREDICTOR in weights,
      **(keypoint_fields(weights, num_classes) if KEYPOINTS in weights else {}),
      "data.canvas": 1344, "data.min_size": 800, "data.max_size": 1333,  # test sizes; canvas: 1333 -> x32
      # Inference at the image's own shape: the resized image padded to a multiple of 32 with zeros
      # after normalising, as the reference feeds its backbone (ImageList / batch_images).
      "data.size_divisibility": 32, "model.padding": "normalized",
      **resnet_fields(weights), "model.head_norm": "",
      # RoIAlign's adaptive grid (POOLER_SAMPLING_RATIO 0), exact for RoIs up to 4:1 on P2..P5 (and all
      # square ones): ops.poolers.exact_grid_bound(7, canvas, aspect=4) is 8 on canvases 512..1344.
      "model.roi.sampling_ratio": 0, "model.roi.max_sampling_ratio": 8,
      "model.mask.paste_border": "zeros",  # Detectron2's paste (grid_sample, zero padding)
      # Detectron2 sends every (proposal, class) pair above the score threshold to NMS.
      "model.roi.candidates_per_image": config.model.rpn.post_nms_topk_test * num_classes,
  })
  if c4:
    configs.override(config, C4)
  configs.override(config, overrides or {})
  canvas_lib.check(config.data)
  return config


def keypoint_fields(weights: dict[str, np.ndarray], num_classes: int) -> dict:
  """``common.keypoint_fields`` of the keypoint head in ``weights``: K, the convs' number and width."""
  convs = [name for name in weights if re.fullmatch(r"roi_heads\.keypoint_head\.conv_fcn\d+\.weight", name)]
  return common.keypoint_fields(weights[KEYPOINTS].shape[1], len(convs), weights[KEYPOINTS].shape[0], num_classes)


def convert(src: str, out: str, overrides: dict | None = None) -> ml_collections.ConfigDict:
  """Reads ``src`` (a Detectron2 .pkl / .pth, or an ImageNet ResNet's .pkl), writes workdir ``out``
  (config.json + checkpoint 0)."""
  def from_weights(weights):
    if C2_STEM in weights:
      weights = from_caffe2(weights)
      config, prefix = backbone_config(weights, overrides), "backbone/bottom_up/"
    else:
      config, prefix = detectron2_config(weights, overrides), ""
    return (config, *common.converted_state(config, lambda shapes: convert_weights(weights, shapes), prefix))
  return common.convert_file(src, out, "detectron2", from_weights)
