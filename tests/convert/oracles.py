"""Where the parity references live, and what the parity tests share (tests skip without them).

``$MRCNN_ORACLES``, else ../shared/oracles beside the repository: the oracles' scripts, with the
Detectron2 oracle's outputs and weight generator. ``$MRCNN_TV_ORACLE``, else ../tv_oracle beside the
repository: the outputs that the torchvision oracle's script writes (they need torch to make, see
TORCHVISION_HOW).
"""

import importlib.util
import os

import jax.numpy as jnp
import numpy as np
import pytest

from mrcnn_jax.ops.boxes import box_iou

_BESIDE_REPOSITORY = os.path.normpath(os.path.join(os.path.dirname(__file__), "../../.."))
ORACLES = os.environ.get("MRCNN_ORACLES", os.path.join(_BESIDE_REPOSITORY, "shared/oracles"))
DETECTRON2 = os.path.join(ORACLES, "detectron2_r50_fpn")
DETECTRON2_KEYPOINTS = os.path.join(ORACLES, "detectron2_kp_r50_fpn")
TORCHVISION = os.environ.get("MRCNN_TV_ORACLE", os.path.join(_BESIDE_REPOSITORY, "tv_oracle"))
TORCHVISION_HOW = (f"<torch venv>/bin/python {ORACLES}/torchvision_r50_fpn/tv_oracle.py {TORCHVISION} "
                   "(see its docstring), or set MRCNN_TV_ORACLE")
MATCH_IOU = 0.98


def d2_weights(oracle: str = DETECTRON2, name: str = "d2_weights"):
  """An oracle's weight generator, by default the Mask R-CNN one's ``d2_weights`` module
  (``generate(seed)``, ``write``, ``param_shapes``), or a skip."""
  script = os.path.join(oracle, f"{name}.py")
  if not os.path.exists(script):
    pytest.skip(f"no Detectron2 oracle at {script} (set MRCNN_ORACLES)")
  spec = importlib.util.spec_from_file_location(name, script)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def torchvision_outputs() -> str:
  """The torchvision oracle's output directory, or a skip that says how to make it."""
  if not os.path.exists(os.path.join(TORCHVISION, "tv_outputs.npz")):
    pytest.skip(f"no torchvision oracle outputs in {TORCHVISION}: make them with {TORCHVISION_HOW}")
  return TORCHVISION


def matched_pairs(boxes, classes, ours: dict) -> list[tuple[int, int]]:
  """A reference's detections of one image (boxes [n,4], classes [n] 1..K, in its score order) matched
  greedily to ours (``Detections.image``) of the same class with box IoU > MATCH_IOU: (its, our) indices."""
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
  matched, max score difference, max box coordinate difference (px), mean mask IoU) over the pairs."""
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
