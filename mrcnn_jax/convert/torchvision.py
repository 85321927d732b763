"""torchvision checkpoints -> a mrcnn_jax workdir: ``maskrcnn_resnet50_fpn`` (v1 and v2),
``keypointrcnn_resnet50_fpn`` and ResNet ImageNet classifiers.

    python -m mrcnn_jax.convert torchvision maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth --out runs/tv
    python -m mrcnn_jax.convert torchvision maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth --out runs/tv_v2
    python -m mrcnn_jax.convert torchvision keypointrcnn_resnet50_fpn_coco-fc266e95.pth --out runs/tv_kp
    python -m mrcnn_jax.convert torchvision resnet50-0676ba61.pth --out runs/r50_imagenet   # backbone only

The names tell what a file holds: ``backbone.body.*`` with ``roi_heads.*`` is a Mask R-CNN or a Keypoint R-CNN
(the zoo file or ``torch.save(model.state_dict())`` of a fine-tuned one; its classes are read from the
predictor's shape, its keypoints from ``keypoint_predictor.kps_score_lowres``); ``layer1.0.conv1.weight`` with
``fc.weight`` is a classifier, whose trunk alone is written at its path in an FPN model
(``backbone/bottom_up/...``, ``config.pretrained.backbone_only``), to start training from. The ResNet's depth
and width come from its blocks and stem (``common.resnet_fields``).

Names: ``NAME_RULES`` (regex substitutions) take both torchvision >= 0.13's names (``inner_blocks.0.0``,
``rpn.head.conv.0.0``, ``mask_head.0.0``) and the older ones (``inner_blocks.0``, ``rpn.head.conv``,
``mask_head.mask_fcn1``); the keypoint head's Sequential (``keypoint_head.0``, ``.2``, ... : conv, ReLU, ...)
becomes Detectron2's ``conv_fcn1``, ``conv_fcn2``, ..., ``kps_score_lowres`` its ``score_lowres``. A v2
model (``roi_heads.box_head.0.0.weight``: Li et al.'s recipe) has BatchNorm after its FPN, box-head and
mask-head convs (pairs ``.0.`` conv, ``.1.`` BN: our ``head_norm`` frozen_bn), two RPN convs and a box
head of 4 convs + 1 FC (``box_head.5``): ``V2_RULES`` go first, ``V2`` sets the config. Layouts
(``to_ours``): ``common.pytorch_layout``; fc6 from the (C,7,7) flatten of NCHW RoI features to our
(7,7,C) one; ``bbox_pred``'s rows for the background class and ``mask_fcn_logits``'s background channel
dropped. Class 0 is the background in both.

Classes: torchvision's num_classes counts the background. A 91-class model is torchvision's COCO
layout (label = COCO category id, 10 ids unused: "N/A"); its 80 used classes are kept, in
``COCO_CLASSES`` order as our COCO datasets and evaluation have them, and the N/A slots leave the
softmax: scores rise by the probability those slots had (never a training target, so small).

``torchvision_config`` reproduces torchvision's inference (meta.json of the oracle in
``../shared/oracles/torchvision_r50_fpn`` cites each fact): RGB, mean (0.485, 0.456, 0.406) and std (0.229,
0.224, 0.225) of the 0..1 scale, frozen BN, stride in the 3x3 convs, test sizes 800 / 1333, cell anchors
rounded to integers, proposals narrower than 1e-3 px dropped, RoIAlign aligned=False with 2x2 samples,
detections narrower than 1e-2 px dropped, every (proposal, class) candidate to NMS, its mask paste, and its
keypoint score (the bicubic logit at the argmax: ``model.keypoint.score`` "logit"; the positions are
Detectron2's, whose decode torchvision's is). The rest (P6, RPN top-k and NMS, level assignment, box coder,
thresholds) is the base config's, up to two boundary cases: torchvision keeps proposals of width >= 1e-3 where
we keep > 1e-3, and its level rule adds 1e-6 after the log2 where ours adds 1e-8 inside it (RoIs within ~1e-6
of a level's size; none of the oracle's 1000).

torchvision pads the normalised image with zeros, we pad pixels with black before normalising: outputs
are the same only where nothing is padded (docs/weights.md).
"""

from __future__ import annotations

import re

import ml_collections
import numpy as np

from mrcnn_jax import configs
from mrcnn_jax.convert import common
from mrcnn_jax.data import canvas as canvas_lib
from mrcnn_jax.data.coco_classes import COCO_CATEGORY_IDS, COCO_CLASSES
from mrcnn_jax.errors import UserError

BODY = "backbone.body."
# Applied in order to a torchvision name (a classifier's with BODY in front); the result, "." -> "/", is our path.
NAME_RULES = (
    (r"^backbone\.body\.conv1\.", "backbone.bottom_up.stem.conv."),
    (r"^backbone\.body\.bn1\.", "backbone.bottom_up.stem.norm."),
    (r"^backbone\.body\.layer(\d)\.", lambda m: f"backbone.bottom_up.res{int(m[1]) + 1}."),
    (r"^(backbone\.bottom_up\.res\d\.\d+)\.conv(\d)\.", r"\1.conv\2.conv."),
    (r"^(backbone\.bottom_up\.res\d\.\d+)\.bn(\d)\.", r"\1.conv\2.norm."),
    (r"\.downsample\.0\.", ".shortcut.conv."),
    (r"\.downsample\.1\.", ".shortcut.norm."),
    (r"^backbone\.fpn\.inner_blocks\.(\d)\.(0\.)?", lambda m: f"backbone.fpn_lateral{int(m[1]) + 2}."),
    (r"^backbone\.fpn\.layer_blocks\.(\d)\.(0\.)?", lambda m: f"backbone.fpn_output{int(m[1]) + 2}."),
    (r"^rpn\.head\.conv\.(0\.0\.)?", "proposal_generator.rpn_head.conv."),
    (r"^rpn\.head\.cls_logits\.", "proposal_generator.rpn_head.objectness_logits."),
    (r"^rpn\.head\.bbox_pred\.", "proposal_generator.rpn_head.anchor_deltas."),
    (r"^roi_heads\.box_head\.fc6\.", "roi_heads.box_head.fc1."),
    (r"^roi_heads\.box_head\.fc7\.", "roi_heads.box_head.fc2."),
    (r"^roi_heads\.mask_head\.(\d)\.0\.", lambda m: f"roi_heads.mask_head.mask_fcn{int(m[1]) + 1}."),
    (r"^roi_heads\.mask_predictor\.conv5_mask\.", "roi_heads.mask_head.deconv."),
    (r"^roi_heads\.mask_predictor\.mask_fcn_logits\.", "roi_heads.mask_head.predictor."),
    (r"^roi_heads\.keypoint_head\.(\d+)\.", lambda m: f"roi_heads.keypoint_head.conv_fcn{int(m[1]) // 2 + 1}."),
    (r"^roi_heads\.keypoint_predictor\.kps_score_lowres\.", "roi_heads.keypoint_head.score_lowres."),
    *common.NORM_AND_KERNEL_RULES,
)
# torchvision's v2 (maskrcnn_resnet50_fpn_v2), applied before NAME_RULES: a normalised conv is a (conv,
# BatchNorm2d) pair ".0." / ".1." (FPN, mask head, box head's box_head.0..3); the RPN head has a list of
# convs; the box head's Linear is box_head.5 (after the convs and a Flatten).
V2_RULES = (
    (r"^(backbone\.fpn\.(?:inner|layer)_blocks\.\d|roi_heads\.mask_head\.\d)\.0\.weight$", r"\1.0.conv.weight"),
    (r"^(backbone\.fpn\.(?:inner|layer)_blocks\.\d|roi_heads\.mask_head\.\d)\.1\.", r"\1.0.norm."),
    (r"^rpn\.head\.conv\.(\d)\.0\.", r"proposal_generator.rpn_head.conv.\1."),
    (r"^roi_heads\.box_head\.(\d)\.([01])\.", lambda m: f"roi_heads.box_head.conv{int(m[1]) + 1}.{('conv', 'norm')[int(m[2])]}."),
    (r"^roi_heads\.box_head\.5\.", "roi_heads.box_head.fc1."),
)
V2_FC = "roi_heads.box_head.5.weight"
# v2's heads: BatchNorm (frozen at inference) after the FPN, box-head and mask-head convs; 2 RPN convs;
# a box head of 4 convs and 1 FC.
V2 = {"model.head_norm": "frozen_bn", "model.rpn.num_convs": 2, "model.roi.num_convs": 4, "model.roi.num_fc": 1}
# BatchNorm2d's counter (a model trained without frozen BN) and a classifier's head.
IGNORED = re.compile(r"(\.num_batches_tracked|^backbone\.body\.fc\.\w+)$")
FC6 = "roi_heads.box_head.fc6.weight"
CLS_SCORE = "roi_heads.box_predictor.cls_score."
BBOX_PRED = "roi_heads.box_predictor.bbox_pred."
MASK_LOGITS = "roi_heads.mask_predictor.mask_fcn_logits."
CONV5_MASK = "roi_heads.mask_predictor.conv5_mask."
KEYPOINTS = "roi_heads.keypoint_predictor.kps_score_lowres."  # ConvTranspose2d [512, K, 4, 4]
FPN_CHANNELS = 256
COCO_SLOTS = 91  # torchvision's COCO models: background + category ids 1..90
# torchvision's input: RGB in 0..1, normalised with ImageNet's mean and std (here on the 0..255 scale).
INPUT = {"model.input_format": "RGB", "model.pixel_mean": (123.675, 116.28, 103.53),
         "model.pixel_std": (58.395, 57.12, 57.375), "model.stride_in_1x1": False,
         "model.norm": "frozen_bn", "model.freeze_at": 2}
WHAT = "a torchvision maskrcnn_resnet50_fpn(_v2), keypointrcnn_resnet50_fpn or ResNet classifier"


def our_path(name: str, v2: bool = False) -> str:
  """torchvision's name -> our path: ``backbone.body.layer1.0.bn2.running_var`` ->
  ``backbone/bottom_up/res2/0/conv2/norm/var``; ``v2``: a maskrcnn_resnet50_fpn_v2's name."""
  return common.apply_rules(name, (V2_RULES if v2 else ()) + NAME_RULES)


def is_v2(weights: dict[str, np.ndarray]) -> bool:
  """A maskrcnn_resnet50_fpn_v2 state dict (its box head's first conv)."""
  return "roi_heads.box_head.0.0.weight" in weights


def kept_classes(slots: int) -> tuple[int, ...]:
  """The predictor's class slots we keep, in our class order (slot 0, the background, apart)."""
  return COCO_CATEGORY_IDS if slots == COCO_SLOTS else tuple(range(1, slots))


def to_ours(name: str, array: np.ndarray, classes: tuple[int, ...] = ()) -> np.ndarray:
  """One torchvision tensor in our layout; ``classes``: the predictor's slots kept (``kept_classes``)."""
  if name.startswith(CLS_SCORE):               # [K+1, in]: background first, as ours
    array = array[[0, *classes]]
  elif name.startswith(BBOX_PRED):             # [(K+1)*4, in]: drop the background's 4 rows
    array = array.reshape(-1, 4, *array.shape[1:])[list(classes)].reshape(-1, *array.shape[1:])
  elif name.startswith(MASK_LOGITS):           # [K+1, 256, 1, 1]: drop the background's channel
    array = array[list(classes)]
  if name in (FC6, V2_FC):
    return common.fc_after_nchw_flatten(array, FPN_CHANNELS)
  return common.pytorch_layout(array, transposed=name.startswith((CONV5_MASK, KEYPOINTS)))


def convert_weights(weights: dict[str, np.ndarray], shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
  """torchvision state dict (a classifier's with BODY in front of its names) -> {our path: float32
  array} for our variables' ``shapes`` (``common.convert_weights``)."""
  slots = weights[CLS_SCORE + "weight"].shape[0] if CLS_SCORE + "weight" in weights else 0
  classes, v2 = kept_classes(slots), is_v2(weights)
  return common.convert_weights(weights, shapes,
                                rename=lambda name: None if IGNORED.search(name) else our_path(name, v2),
                                to_ours=lambda name, array: to_ours(name, array, classes), what=WHAT)


def is_classifier(weights: dict[str, np.ndarray]) -> bool:
  """A ResNet ImageNet classifier's state dict (else a Mask R-CNN's); UserError for anything else."""
  if "fc.weight" in weights and "layer1.0.conv1.weight" in weights:
    return True
  if not any(name.startswith(BODY) for name in weights):
    hint = (" (a Detectron2 checkpoint: convert it with `detectron2`)"
            if any(name.startswith("backbone.bottom_up.") for name in weights) else "")
    raise UserError(f"neither a torchvision Mask R-CNN (backbone.body.*) nor a ResNet classifier "
                    f"(layer1.0.conv1.weight, fc.weight){hint}")
  for key in (CLS_SCORE + "weight", V2_FC if is_v2(weights) else FC6):
    if key not in weights:
      raise UserError(f"the checkpoint has no {key}: not a torchvision maskrcnn_resnet50_fpn(_v2) or "
                      "keypointrcnn_resnet50_fpn state dict")
  if MASK_LOGITS + "weight" not in weights and KEYPOINTS + "weight" not in weights:
    raise UserError(f"the checkpoint has neither {MASK_LOGITS}weight nor {KEYPOINTS}weight: not a torchvision "
                    "maskrcnn_resnet50_fpn(_v2) or keypointrcnn_resnet50_fpn state dict")
  return False


def resnet_fields(weights: dict[str, np.ndarray]) -> dict:
  """``model.backbone`` and ``model.width`` of the ResNet in ``weights`` (torchvision's names)."""
  return common.resnet_fields({our_path(name): array for name, array in weights.items()})


def torchvision_config(weights: dict[str, np.ndarray], overrides: dict | None = None) -> ml_collections.ConfigDict:
  """Our config for a torchvision Mask R-CNN's ``weights`` (classes and depth read from them), with
  torchvision's inference settings, then ``overrides`` ({dotted field: value})."""
  slots = weights[CLS_SCORE + "weight"].shape[0]
  num_classes = len(kept_classes(slots))
  config = configs.get("base")
  configs.override(config, {
      **INPUT,
      "num_classes": num_classes,
      "class_names": COCO_CLASSES if slots == COCO_SLOTS else tuple(f"class_{k}" for k in range(1, slots)),
      "data.canvas": 1344, "data.min_size": 800, "data.max_size": 1333,  # test sizes; canvas: 1333 -> x32
      # Inference at the image's own shape: the resized image padded to a multiple of 32 with zeros
      # after normalising, as the reference feeds its backbone (ImageList / batch_images).
      "data.size_divisibility": 32, "model.padding": "normalized",
      "data.resize": "torchvision",  # bilinear on the normalised float image, in the graph
      **resnet_fields(weights), "model.head_norm": "",
      "model.round_anchors": True,
      "model.rpn.min_size": 1e-3,
      "model.roi.aligned": False, "model.roi.sampling_ratio": 2,
      "model.roi.min_box_size": 1e-2,
      # torchvision sends every (proposal, class) pair above the score threshold to NMS.
      "model.roi.candidates_per_image": config.model.rpn.post_nms_topk_test * num_classes,
      "model.mask.paste_border": "torchvision",
      **(V2 if is_v2(weights) else {}),
      "model.mask_on": MASK_LOGITS + "weight" in weights,
      **(keypoint_fields(weights, num_classes) if KEYPOINTS + "weight" in weights else {}),
  })
  configs.override(config, overrides or {})
  canvas_lib.check(config.data)
  return config


def keypoint_fields(weights: dict[str, np.ndarray], num_classes: int) -> dict:
  """``common.keypoint_fields`` of the keypoint head in ``weights``, with torchvision's keypoint score."""
  convs = [name for name in weights if re.fullmatch(r"roi_heads\.keypoint_head\.\d+\.weight", name)]
  lowres = weights[KEYPOINTS + "weight"]
  return {**common.keypoint_fields(lowres.shape[1], len(convs), lowres.shape[0], num_classes),
          "model.keypoint.score": "logit"}


def backbone_config(weights: dict[str, np.ndarray], overrides: dict | None = None) -> ml_collections.ConfigDict:
  """The r50_fpn_coco config with a classifier's ResNet (names under BODY) and input, backbone only."""
  config = configs.get("r50_fpn_coco")
  configs.override(config, {**INPUT, **resnet_fields(weights), "pretrained.backbone_only": True})
  configs.override(config, overrides or {})
  canvas_lib.check(config.data)
  return config


def convert(src: str, out: str, overrides: dict | None = None) -> ml_collections.ConfigDict:
  """Reads ``src`` (a torchvision .pth), writes workdir ``out`` (config.json + checkpoint 0; a
  classifier: only ``backbone/bottom_up``'s variables)."""
  def from_weights(weights):
    if is_classifier(weights):
      weights = {BODY + name: array for name, array in weights.items()}
      config, prefix = backbone_config(weights, overrides), "backbone/bottom_up/"
    else:
      config, prefix = torchvision_config(weights, overrides), ""
    return (config, *common.converted_state(config, lambda shapes: convert_weights(weights, shapes), prefix))
  return common.convert_file(src, out, "torchvision", from_weights)
