"""torchvision's keypointrcnn_resnet50_fpn at its default transform (800 / 1333) on six photographs at their own size.

Not part of the project, and torch is not a dependency of it: run this only in the private torch venv that
../shared/oracles/torchvision_r50_fpn/tv_oracle.py's docstring describes (CPU torch 2.13 wheel of this
machine, torchvision 0.28.0 installed with --no-deps, numpy, pillow):

    nice <venv>/bin/python scripts/oracles/tv_keypoint_oracle.py [OUTDIR [SEED ...]]

OUTDIR defaults to /work/tv_oracle/keypoints, the seeds to 0 1. The model is
keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2, num_keypoints=17) with
FrozenBatchNorm2d, in eval mode, float32, 2 threads, one image per call, with torchvision's defaults:
min_size 800 at test time, max_size 1333, box score threshold 0.05, 100 detections, keypoint RoIAlign
14 x 14 with 2 x 2 samples (aligned=False), keypoint score = the bicubic map's value at its argmax.

Weights: ../shared/oracles/detectron2_kp_r50_fpn/d2_kp_weights.py's calibrated random Keypoint R-CNN of
the same seed (numpy only), renamed to torchvision's names (``tv_name``), the background moved from
Detectron2's last class slot to torchvision's first (``bbox_pred`` gets zero rows for it), and
Detectron2's input (BGR, 0..255 minus the mean, std 1) folded into the stem conv so that torchvision's
input (RGB / 255, ImageNet mean and std) gives the same stem output. The networks still differ where
torchvision does (stride in the 3x3 convs, RoIAlign aligned=False, anchors, decode): this is
torchvision's model, not Detectron2's. Photographs: the Detectron2 keypoint oracle's six
(outputs_seed0.npz img{i}_image).

Writes OUTDIR/tv_kprcnn_seed{S}.pth (torch.save of the state dict, ~237 MB: what
``python -m mrcnn_jax.convert torchvision`` reads) and OUTDIR/outputs_seed{S}.npz, per image i:
  img{i}_image [H,W,3] uint8 RGB      img{i}_boxes [n,4] x1,y1,x2,y2 in original pixels
  img{i}_scores [n] float32           img{i}_keypoints [n,17,3] x, y (original pixels), keypoint score
  img{i}_resized_hw [2], img{i}_padded_hw [2]  what GeneralizedRCNNTransform fed the backbone
and OUTDIR/meta.json: versions, the checkpoints' SHA-256, per seed and image the sizes, detection and
keypoint-score statistics, the bicubic maps' top-1 minus top-2 margins, and whether two runs agree bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORACLES = os.path.join(REPO, "..", "shared", "oracles")
sys.path.insert(0, os.path.join(ORACLES, "torchvision_r50_fpn"))
sys.path.insert(0, os.path.join(ORACLES, "detectron2_kp_r50_fpn"))
import d2_kp_weights  # noqa: E402
import tv_oracle  # noqa: E402  (loads torchvision's CPU ops through its shim)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from torchvision.models.detection import keypointrcnn_resnet50_fpn  # noqa: E402
from torchvision.models.detection import roi_heads as tv_roi_heads  # noqa: E402

PHOTOS = os.path.join(ORACLES, "detectron2_kp_r50_fpn", "outputs_seed0.npz")
NUM_IMAGES = 6
THREADS = 2
# torchvision name -> Detectron2 name, applied in order.
RULES = (
    (r"^backbone\.body\.conv1\.", "backbone.bottom_up.stem.conv1."),
    (r"^backbone\.body\.bn1\.", "backbone.bottom_up.stem.conv1.norm."),
    (r"^backbone\.body\.layer(\d)\.(\d+)\.conv(\d)\.", lambda m: f"backbone.bottom_up.res{int(m[1]) + 1}.{m[2]}.conv{m[3]}."),
    (r"^backbone\.body\.layer(\d)\.(\d+)\.bn(\d)\.", lambda m: f"backbone.bottom_up.res{int(m[1]) + 1}.{m[2]}.conv{m[3]}.norm."),
    (r"^backbone\.body\.layer(\d)\.(\d+)\.downsample\.0\.", lambda m: f"backbone.bottom_up.res{int(m[1]) + 1}.{m[2]}.shortcut."),
    (r"^backbone\.body\.layer(\d)\.(\d+)\.downsample\.1\.", lambda m: f"backbone.bottom_up.res{int(m[1]) + 1}.{m[2]}.shortcut.norm."),
    (r"^backbone\.fpn\.inner_blocks\.(\d)\.0\.", lambda m: f"backbone.fpn_lateral{int(m[1]) + 2}."),
    (r"^backbone\.fpn\.layer_blocks\.(\d)\.0\.", lambda m: f"backbone.fpn_output{int(m[1]) + 2}."),
    (r"^rpn\.head\.conv\.0\.0\.", "proposal_generator.rpn_head.conv."),
    (r"^rpn\.head\.cls_logits\.", "proposal_generator.rpn_head.objectness_logits."),
    (r"^rpn\.head\.bbox_pred\.", "proposal_generator.rpn_head.anchor_deltas."),
    (r"^roi_heads\.box_head\.fc6\.", "roi_heads.box_head.fc1."),
    (r"^roi_heads\.box_head\.fc7\.", "roi_heads.box_head.fc2."),
    (r"^roi_heads\.keypoint_head\.(\d+)\.", lambda m: f"roi_heads.keypoint_head.conv_fcn{int(m[1]) // 2 + 1}."),
    (r"^roi_heads\.keypoint_predictor\.kps_score_lowres\.", "roi_heads.keypoint_head.score_lowres."),
)


def tv_name_to_d2(name: str) -> str:
  for pattern, repl in RULES:
    name = re.sub(pattern, repl, name)
  return name


def tv_state_dict(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
  """d2_kp_weights.generate(seed) in ``model``'s names and layouts (see the module docstring)."""
  d2 = d2_kp_weights.generate(seed)
  mean = np.asarray(model.transform.image_mean, np.float64)
  std = np.asarray(model.transform.image_std, np.float64)
  assert np.allclose(mean[::-1] * 255, (103.53, 116.28, 123.675)), mean  # Detectron2's BGR pixel mean
  out, used = {}, set()
  for name, like in model.state_dict().items():
    if name.startswith("roi_heads.box_predictor."):
      src = name
      d2_array = d2[src]
      if name.endswith("cls_score.weight") or name.endswith("cls_score.bias"):
        array = d2_array[::-1]  # Detectron2 [person, background] -> torchvision [background, person]
      else:  # bbox_pred: torchvision keeps the background's 4 rows
        array = np.concatenate([np.zeros_like(d2_array), d2_array])
    else:
      src = tv_name_to_d2(name)
      array = d2[src]
      if src == "backbone.bottom_up.stem.conv1.weight":  # BGR, std 1 on 0..255 -> RGB, ImageNet std on 0..1
        array = (array[:, ::-1].astype(np.float64) * (255 * std)[None, :, None, None]).astype(np.float32)
    used.add(src)
    assert tuple(array.shape) == tuple(like.shape), (name, src, array.shape, like.shape)
    out[name] = torch.from_numpy(np.ascontiguousarray(array, np.float32))
  assert used == set(d2), sorted(set(d2) - used)
  return out


def build_model(seed: int) -> tuple[torch.nn.Module, dict]:
  model = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2, num_keypoints=17)
  assert tv_oracle._freeze_bn(model) == 53  # pylint: disable=protected-access
  state = tv_state_dict(model, seed)
  model.load_state_dict(state, strict=True)
  tr, rh = model.transform, model.roi_heads
  assert (tr.min_size[-1], tr.max_size, tr.size_divisible) == (800, 1333, 32), tr
  assert rh.score_thresh == 0.05 and rh.detections_per_img == 100
  assert rh.keypoint_roi_pool.sampling_ratio == 2 and rh.keypoint_roi_pool.output_size == (14, 14)
  return model.eval(), state


def map_margins(model, x: torch.Tensor, boxes: torch.Tensor) -> np.ndarray:
  """Top-1 minus top-2 of every bicubic keypoint map (torchvision's decode), [n*17]: how decisive the argmax is."""
  with torch.no_grad():
    il, _ = model.transform([x])
    features = model.backbone(il.tensors)
    scale = torch.tensor([il.image_sizes[0][1] / x.shape[-1], il.image_sizes[0][0] / x.shape[-2]] * 2)
    rois = boxes * scale
    maps = model.roi_heads.keypoint_predictor(model.roi_heads.keypoint_head(
        model.roi_heads.keypoint_roi_pool(features, [rois], il.image_sizes)))
  margins = []
  for m, r in zip(maps, rois):
    w, h = (int(math.ceil(max(float(v), 1.0))) for v in (r[2] - r[0], r[3] - r[1]))
    resized = F.interpolate(m[:, None], size=(h, w), mode="bicubic", align_corners=False)[:, 0].reshape(17, -1)
    top = resized.topk(2, dim=1).values
    margins.append((top[:, 0] - top[:, 1]).numpy())
  return np.concatenate(margins) if margins else np.zeros(0)


def percentiles(a: np.ndarray) -> dict:
  return {f"p{p}": float(np.percentile(a, p)) for p in (0, 1, 5, 50, 95, 100)} if a.size else {}


def run_seed(seed: int, outdir: str, photos) -> dict:
  model, state = build_model(seed)
  checkpoint = os.path.join(outdir, f"tv_kprcnn_seed{seed}.pth")
  torch.save(state, checkpoint)
  arrays, per_image = {}, []
  for i, img in enumerate(photos):
    x = tv_oracle.to_tensor(img)
    with torch.no_grad():
      il, _ = model.transform([x])
      d = model([x])[0]
      again = model([x])[0]
    same = all(torch.equal(d[k], again[k]) for k in d)
    n = len(d["scores"])
    keypoints = torch.cat([d["keypoints"][..., :2], d["keypoints_scores"][..., None]], -1).numpy()
    arrays.update({f"img{i}_image": img, f"img{i}_boxes": d["boxes"].numpy(), f"img{i}_scores": d["scores"].numpy(),
                   f"img{i}_keypoints": keypoints, f"img{i}_resized_hw": np.array(tuple(il.image_sizes[0])),
                   f"img{i}_padded_hw": np.array(tuple(il.tensors.shape[-2:]))})
    margins = map_margins(model, x, d["boxes"])
    scores = d["scores"].numpy()
    per_image.append({
        "size_hw": list(img.shape[:2]), "resized_hw": list(il.image_sizes[0]),
        "padded_hw": list(il.tensors.shape[-2:]), "detections": n,
        "scores": {"max": float(scores.max()), "min": float(scores.min()),
                   "min_gap": float((-np.diff(scores)).min()) if n > 1 else None} if n else {},
        "keypoint_score": percentiles(keypoints[..., 2].ravel()),
        "bicubic_map_top1_minus_top2": percentiles(margins),
        "bicubic_map_margin_fraction_over_1e-3": float((margins > 1e-3).mean()) if margins.size else None,
        "repeat_runs_bit_equal": same,
    })
    print(f"seed {seed} img{i}: {img.shape[:2]} -> {per_image[-1]['resized_hw']} on {per_image[-1]['padded_hw']}, "
          f"{n} detections, map margin > 1e-3: {per_image[-1]['bicubic_map_margin_fraction_over_1e-3']}", flush=True)
  np.savez_compressed(os.path.join(outdir, f"outputs_seed{seed}.npz"), **arrays)
  with open(checkpoint, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
  return {"checkpoint": {"file": os.path.basename(checkpoint), "sha256": digest}, "per_image": per_image}


def main(outdir: str, seeds: list[int]) -> int:
  torch.set_num_threads(THREADS)
  os.makedirs(outdir, exist_ok=True)
  ref = np.load(PHOTOS)
  photos = [ref[f"img{i}_image"] for i in range(NUM_IMAGES)]
  meta = {
      "what": "torchvision keypointrcnn_resnet50_fpn at its default transform on six photographs at their own size",
      "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": np.__version__},
      "shim": tv_oracle.SHIM,
      "weights": "d2_kp_weights.generate(seed) renamed to torchvision's names; background slot moved first; "
                 "Detectron2's input normalisation folded into the stem conv",
      "config": {"num_classes": 2, "num_keypoints": 17, "min_size": 800, "max_size": 1333, "box_score_thresh": 0.05,
                 "detections_per_img": 100, "norm": "FrozenBatchNorm2d", "dtype": "float32", "threads": THREADS,
                 "call": "model([image]) per image, eval, torch.no_grad",
                 "keypoint_score": tv_roi_heads.heatmaps_to_keypoints.__module__ + ".heatmaps_to_keypoints: "
                                   "the bicubic map's value at its argmax"},
      "images": os.path.abspath(PHOTOS),
      "seeds": {str(s): run_seed(s, outdir, photos) for s in seeds},
  }
  with open(os.path.join(outdir, "meta.json"), "w") as f:
    json.dump(meta, f, indent=1)
  print(f"written to {outdir}")
  return 0


if __name__ == "__main__":
  OUTDIR = sys.argv[1] if len(sys.argv) > 1 else "/work/tv_oracle/keypoints"
  raise SystemExit(main(OUTDIR, [int(s) for s in sys.argv[2:]] or [0, 1]))
