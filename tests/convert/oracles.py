"""Where the parity references live, and what the parity tests share (tests skip without them).

``$MRCNN_ORACLES``, else ../shared/oracles beside the repository: the oracles' scripts, with the
Detectron2 oracles' outputs and weight generators (R50-FPN; the model zoo's R50-C4 and X101-FPN).
``$MRCNN_TV_ORACLE``, else ../tv_oracle beside the repository: the outputs that the torchvision oracle's
script writes (they need torch to make, see TORCHVISION_HOW), and in its ``v2`` folder those of
scripts/oracles/tv_v2_oracle.py.
"""

import importlib.util
import os

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mrcnn_jax.ops.boxes import box_iou

_BESIDE_REPOSITORY = os.path.normpath(os.path.join(os.path.dirname(__file__), "../../.."))
ORACLES = os.environ.get("MRCNN_ORACLES", os.path.join(_BESIDE_REPOSITORY, "shared/oracles"))
DETECTRON2 = os.path.join(ORACLES, "detectron2_r50_fpn")
DETECTRON2_ZOO = os.path.join(ORACLES, "detectron2_zoo")
DETECTRON2_KEYPOINTS = os.path.join(ORACLES, "detectron2_kp_r50_fpn")
TORCHVISION = os.environ.get("MRCNN_TV_ORACLE", os.path.join(_BESIDE_REPOSITORY, "tv_oracle"))
TORCHVISION_HOW = (f"<torch venv>/bin/python {ORACLES}/torchvision_r50_fpn/tv_oracle.py {TORCHVISION} "
                   "(see its docstring), or set MRCNN_TV_ORACLE")
MATCH_IOU = 0.98


def d2_weights(oracle: str = DETECTRON2, name: str = "d2_weights"):
  """An oracle's weight generator, by default the Mask R-CNN one's ``d2_weights`` module
  (``generate(seed)``, ``write``, ``param_shapes``), or a skip."""
  return _script(os.path.join(oracle, f"{name}.py"))


def d2_zoo_weights():
  """The zoo oracle's ``d2_zoo_weights`` module (``generate(arch, seed)``, ``write(arch, seed, path)``,
  ``param_shapes(arch)``; arch "r50_c4" or "x101_fpn"), or a skip."""
  return _script(os.path.join(DETECTRON2_ZOO, "d2_zoo_weights.py"))


def write_detectron2(arch: str, seed: int, path: str) -> str:
  """Writes the seed's weights of Detectron2 oracle ``arch`` ("r50_fpn", or the zoo's "r50_c4" / "x101_fpn")
  as a model-zoo pickle at ``path`` (or skips) -> the path of that oracle's outputs for the seed."""
  if arch == "r50_fpn":
    d2_weights().write(seed, path)
    return os.path.join(DETECTRON2, f"outputs_seed{seed}.npz")
  d2_zoo_weights().write(arch, seed, path)
  return os.path.join(DETECTRON2_ZOO, arch, f"outputs_seed{seed}.npz")


def _script(path: str):
  if not os.path.exists(path):
    pytest.skip(f"no Detectron2 oracle at {path} (set MRCNN_ORACLES)")
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@nnx.jit
def image0_stages(model, image, proposals):
  """One image [1,H,W,3] -> its RPN feature maps (first 16 channels, [H_l,W_l,16] each), its proposals
  [P,4], and the box head's class logits [N,K+1] / deltas [N,K,4] on a reference's proposals [N,4]."""
  rpn_features, pool_features = model.features(image)
  logits, deltas = model.proposal_generator(rpn_features)
  canvas = image.shape[1:3]
  ours, _ = model.proposal_generator.proposals(logits, deltas, jnp.asarray([canvas]), canvas, training=False)
  cls, box = model.roi_heads.box_logits(pool_features, proposals[None])
  return [f[0, :, :, :16] for f in rpn_features], ours[0], cls[0], box[0]


def torchvision_outputs(version: str = "v1") -> str:
  """The output directory of the torchvision oracle of maskrcnn_resnet50_fpn (``version`` "v1") or of
  maskrcnn_resnet50_fpn_v2 ("v2"), or a skip that says how to make it."""
  outdir, how = TORCHVISION, TORCHVISION_HOW
  if version == "v2":
    outdir = os.path.join(TORCHVISION, "v2")
    how = f"<torch venv>/bin/python scripts/oracles/tv_v2_oracle.py {outdir} (see its docstring)"
  if not os.path.exists(os.path.join(outdir, "tv_outputs.npz")):
    pytest.skip(f"no torchvision {version} oracle outputs in {outdir}: make them with {how}")
  return outdir


def matched_pairs(boxes, classes, ours: dict) -> list[tuple[int, int]]:
  """A reference's detections of one image (boxes [n,4], classes [n] 1..K, in its score order) matched
  greedily to ours (``Detections.image``) of the same class with box IoU > MATCH_IOU: (its, our) indices."""
  if not len(boxes):
    return []
  iou = np.asarray(box_iou(jnp.asarray(boxes), jnp.asarray(ours["boxes"])))
  iou = np.where(np.asarray(classes)[:, None] == np.asarray(ours["classes"])[None], iou, 0.0)
  pairs, used = [], set()
  for r in range(len(iou)):
    for j in np.argsort(-iou[r]):
      if iou[r, j] > MATCH_IOU and j not in used:
        pairs.append((r, j))
        used.add(j)
        break
  return pairs


def agreement(boxes, classes, scores, masks, ours: dict) -> tuple[float, float, float, float]:
  """``matched_pairs`` of a reference's detections (and scores [n], masks [n,H,W] bool) -> (fraction
  matched, max score difference, max box coordinate difference (px), mean mask IoU) over the pairs; a
  reference without detections agrees fully with none of ours, not at all with some."""
  if not len(boxes):
    return float(not len(ours["scores"])), 0.0, 0.0, 1.0
  pairs = matched_pairs(boxes, classes, ours)
  score = max((abs(scores[r] - ours["scores"][j]) for r, j in pairs), default=np.inf)
  box = max((np.abs(boxes[r] - ours["boxes"][j]).max() for r, j in pairs), default=np.inf)
  mask_iou = np.mean([_mask_iou(masks[r], ours["masks"][j]) for r, j in pairs]) if pairs else 0.0
  return len(pairs) / len(boxes), float(score), float(box), float(mask_iou)


def keypoint_agreement(boxes, scores, keypoints, ours: dict) -> tuple[float, float, float, str]:
  """A reference's person detections of one image (boxes [n,4], scores [n], keypoints [n,K,3]: x, y,
  score) against ours (``Detections.image``): (fraction matched, max score difference, fraction of the
  matched detections' keypoints within 1 px with score difference < 1e-3, the measurements in words)."""
  pairs = matched_pairs(boxes, np.ones(len(boxes), int), ours)
  if not pairs:
    return 0.0, np.inf, 0.0, f"none of the reference's {len(boxes)} detections matched"
  r, j = (np.asarray(v) for v in zip(*pairs))
  score = float(np.abs(scores[r] - ours["scores"][j]).max())
  distance = np.linalg.norm(keypoints[r, :, :2] - ours["keypoints"][j, :, :2], axis=-1)
  keypoint_score = np.abs(keypoints[r, :, 2] - ours["keypoints"][j, :, 2])
  close = float(((distance <= 1.0) & (keypoint_score < 1e-3)).mean())
  words = (f"{len(pairs)} of the reference's {len(boxes)} detections matched ({len(ours['scores'])} ours), "
           f"score |d| <= {score:.1e}; keypoints within 1 px with score |d| < 1e-3: {close:.1%} of "
           f"{distance.size}, max distance {distance.max():.2f} px, keypoint score |d| <= "
           f"{keypoint_score.max():.1e} (median {np.median(keypoint_score):.1e})")
  return len(pairs) / len(boxes), score, close, words


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
  """IoU of two boolean masks; 1 when both are empty (a box too small for any pixel to reach 0.5)."""
  union = (a | b).sum()
  return float((a & b).sum() / union) if union else 1.0
