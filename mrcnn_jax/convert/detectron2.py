"""Detectron2 Mask R-CNN R50/R101-FPN checkpoints (``mask_rcnn_R_50_FPN_{1x,3x}``) -> a mrcnn_jax workdir.

    python -m mrcnn_jax.convert detectron2 model_final.pkl --out runs/d2 [--config.data.canvas=512 ...]

Names: our tree follows Detectron2's module names, so ``NAME_RULES`` (regex substitutions on the dotted
name) turn every source name into our path. Layouts (``to_ours``): conv OIHW -> HWIO; linear [out,in] ->
[in,out]; ConvTranspose2d [in,out,kh,kw] -> ``Deconv2x`` [kh,kw,in,out]; FrozenBN weight, bias,
running_mean, running_var -> FrozenBatchNorm scale, bias, mean, var; ``fc1``'s input columns from the
(C,7,7) flatten of NCHW RoI features to our NHWC (7,7,C) flatten; ``cls_score``'s background moved from
the last output to index 0. Already the same: class-specific ``bbox_pred`` rows (class-major, K*4, no
background), RPN outputs (anchor-major, deltas a*4+(dx,dy,dw,dh)) and the anchors of a cell (sizes x
ratios, ratios 0.5, 1, 2: ``ops.anchors``).

``detectron2_config`` is the inference config that reproduces Detectron2's (meta.json of the oracle in
``../shared/oracles/detectron2_r50_fpn`` cites each fact): BGR input, mean (103.53, 116.28, 123.675),
std 1, frozen BN, stride in the 1x1 convs, test sizes 800 / 1333, RoIAlign's adaptive sampling grid,
every (proposal, class) candidate to NMS, the grid_sample paste. The rest (anchors, RPN and RoI-head
thresholds, level assignment, box coder) is the base config's already.
"""

from __future__ import annotations

import hashlib
import math
import os
import re

import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from mrcnn_jax import configs
from mrcnn_jax.checkpoints import save_config
from mrcnn_jax.data.coco_classes import COCO_CLASSES
from mrcnn_jax.errors import UserError
from mrcnn_jax.model.mask_rcnn import build_model

# Applied in order to a Detectron2 name; the result, "." -> "/", is our path.
NAME_RULES = (
    (r"^backbone\.bottom_up\.stem\.conv1\.", "backbone.bottom_up.stem."),
    (r"^(backbone\.bottom_up\.(?:stem|res\d\.\d+\.\w+))\.weight$", r"\1.conv.kernel"),  # ResNet convs
    (r"\.norm\.weight$", ".norm.scale"),
    (r"\.norm\.running_mean$", ".norm.mean"),
    (r"\.norm\.running_var$", ".norm.var"),
    (r"\.weight$", ".kernel"),
)
# Non-persistent buffers older checkpoints saved; our config recomputes them.
IGNORED = re.compile(r"^(pixel_mean|pixel_std|proposal_generator\.anchor_generator\.cell_anchors\.\d+)$")
FC1 = "roi_heads.box_head.fc1.weight"
CLS_SCORE = "roi_heads.box_predictor.cls_score."
BACKBONES = {6: "resnet50", 23: "resnet101"}  # res4's block count
FPN_CHANNELS = 256


def our_path(name: str) -> str:
  """Detectron2's name -> our path: ``...res2.0.conv1.norm.running_var`` -> ``.../res2/0/conv1/norm/var``."""
  for pattern, replacement in NAME_RULES:
    name = re.sub(pattern, replacement, name)
  return name.replace(".", "/")


def to_ours(name: str, array: np.ndarray) -> np.ndarray:
  """One Detectron2 tensor in our layout (see the module docstring)."""
  if name.startswith(CLS_SCORE):               # [K+1, in] / [K+1]: background last -> first
    array = np.roll(array, 1, axis=0)
  if name == FC1:                              # [out, C*S*S] over (C, S, S) -> [(S, S, C), out]
    side = math.isqrt(array.shape[1] // FPN_CHANNELS)
    return array.reshape(-1, FPN_CHANNELS, side, side).transpose(2, 3, 1, 0).reshape(-1, array.shape[0])
  if name.endswith("deconv.weight"):           # [in, out, kh, kw] -> [kh, kw, in, out]
    return array.transpose(2, 3, 0, 1)
  if array.ndim == 4:                          # [out, in, kh, kw] -> [kh, kw, in, out]
    return array.transpose(2, 3, 1, 0)
  if array.ndim == 2:                          # [out, in] -> [in, out]
    return array.T
  return array


def convert_weights(weights: dict[str, np.ndarray], shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
  """Detectron2 state dict -> {our path: float32 array} for our variables' ``shapes`` {path: shape}.

  Every source tensor must land on one of ours (but ``IGNORED`` buffers) and every one of ours must be
  filled with its shape, else a UserError lists what is unexpected, missing or misshapen.
  """
  out, unexpected, misshapen = {}, [], []
  for name, array in weights.items():
    if IGNORED.match(name):
      continue
    path = our_path(name)
    if path not in shapes:
      unexpected.append(name)
      continue
    array = to_ours(name, np.asarray(array, np.float32))
    if array.shape != tuple(shapes[path]):
      misshapen.append(f"{name} -> {path}: {array.shape} vs {tuple(shapes[path])}")
    out[path] = array
  missing = sorted(set(shapes) - set(out))
  problems = [f"{len(v)} {what}: {', '.join(v[:6])}{' ...' if len(v) > 6 else ''}"
              for what, v in (("unexpected", unexpected), ("missing", missing), ("misshapen", misshapen)) if v]
  if problems:
    raise UserError("the checkpoint does not fit a Detectron2 R50/R101-FPN Mask R-CNN: " + "; ".join(problems))
  return out


def detectron2_config(weights: dict[str, np.ndarray], overrides: dict | None = None) -> ml_collections.ConfigDict:
  """Our config for a Detectron2 FPN Mask R-CNN's ``weights`` (classes and depth read from them), with
  Detectron2's inference settings, then ``overrides`` ({dotted field: value})."""
  if "roi_heads.box_predictor.cls_score.weight" not in weights or "roi_heads.mask_head.predictor.weight" not in weights:
    raise UserError("the checkpoint has no roi_heads.box_predictor.cls_score / roi_heads.mask_head.predictor: "
                    "not a Detectron2 Mask R-CNN")
  if any(name.startswith("roi_heads.res5.") for name in weights):
    raise UserError("a C4 Mask R-CNN (roi_heads.res5): only Detectron2's FPN models are converted")
  num_classes = weights["roi_heads.box_predictor.cls_score.weight"].shape[0] - 1
  blocks = len({n.split(".")[3] for n in weights if n.startswith("backbone.bottom_up.res4.")})
  if blocks not in BACKBONES:
    raise UserError(f"res4 has {blocks} blocks: neither ResNet-50 (6) nor ResNet-101 (23)")
  config = configs.get("base")
  configs.override(config, {
      "num_classes": num_classes,
      "class_names": COCO_CLASSES if num_classes == len(COCO_CLASSES) else
                     tuple(f"class_{k}" for k in range(1, num_classes + 1)),
      "data.canvas": 1344, "data.min_size": 800, "data.max_size": 1333,  # TEST sizes; canvas: 1333 -> x32
      "model.backbone": BACKBONES[blocks], "model.norm": "frozen_bn", "model.head_norm": "", "model.freeze_at": 2,
      "model.stride_in_1x1": True, "model.input_format": "BGR",
      "model.pixel_mean": (103.53, 116.28, 123.675), "model.pixel_std": (1.0, 1.0, 1.0),
      # RoIAlign's adaptive grid (POOLER_SAMPLING_RATIO 0), exact for RoIs up to 4:1 on P2..P5 (and all
      # square ones): ops.poolers.exact_grid_bound(7, canvas, aspect=4) is 8 on canvases 512..1344.
      "model.roi.sampling_ratio": 0, "model.roi.max_sampling_ratio": 8,
      "model.mask.paste_border": "zeros",  # Detectron2's paste (grid_sample, zero padding)
      # Detectron2 sends every (proposal, class) pair above the score threshold to NMS.
      "model.roi.candidates_per_image": config.model.rpn.post_nms_topk_test * num_classes,
  })
  configs.override(config, overrides or {})
  if config.data.max_size > config.data.canvas:
    raise UserError(f"data.max_size {config.data.max_size} exceeds data.canvas {config.data.canvas}: images "
                    "would be resized past the canvas (set data.min_size and data.max_size with data.canvas)")
  return config


def build_converted(weights: dict[str, np.ndarray], config: ml_collections.ConfigDict):
  """A ``MaskRCNN`` for ``config`` holding the converted ``weights`` (parameters and frozen BN statistics)."""
  model = nnx.eval_shape(lambda: build_model(config))
  flat = nnx.to_flat_state(nnx.state(model))
  arrays = convert_weights(weights, {"/".join(map(str, path)): v.shape for path, v in flat})
  nnx.update(model, nnx.from_flat_state(
      [(path, type(v)(jnp.asarray(arrays["/".join(map(str, path))]))) for path, v in flat]))
  return model


def sha256_prefix(path: str, length: int = 16) -> str:
  """The first ``length`` hex digits of the file's sha256 (recorded in config.pretrained)."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()[:length]


def convert(src: str, out: str, overrides: dict | None = None) -> ml_collections.ConfigDict:
  """Reads ``src`` (a Detectron2 .pkl / .pth), writes workdir ``out`` (config.json + checkpoint 0)."""
  from mrcnn_jax.convert.checkpoint_io import read_checkpoint  # pylint: disable=import-outside-toplevel
  from mrcnn_jax.train.checkpoint import checkpoint_dir, save_imported  # pylint: disable=import-outside-toplevel
  if not os.path.isfile(src):
    raise UserError(f"checkpoint {src} not found")
  if os.path.isdir(checkpoint_dir(out)) and os.listdir(checkpoint_dir(out)):
    raise UserError(f"{checkpoint_dir(out)} exists and is not empty: give a new --out")
  weights = read_checkpoint(src)
  config = detectron2_config(weights, overrides)
  configs.override(config, {"pretrained.source": "detectron2", "pretrained.file": os.path.abspath(src),
                            "pretrained.sha256": sha256_prefix(src)})
  model = build_converted(weights, config)
  save_config(config, out)
  save_imported(out, nnx.state(model, nnx.Param), nnx.state(model, nnx.BatchStat))
  return config
