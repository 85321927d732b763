"""The real Detectron2 on more weight seeds of the shared Detectron2 oracles' calibrated random models.

Not part of the project, and neither torch nor Detectron2 is a dependency of it: run this in the private
torch venv of ../shared/oracles/torchvision_r50_fpn/tv_oracle.py's docstring, with Detectron2's pure-Python
dependencies added (fvcore iopath omegaconf yacs termcolor tabulate cloudpickle pycocotools hydra-core)
and a Detectron2 v0.6 source tree (commit 02b5c4e2, the shared oracles') as D2SRC:

    nice <venv>/bin/python scripts/oracles/d2_oracle.py D2SRC OUTDIR ORACLE[,ORACLE...] SEED [SEED ...]

ORACLE is one of MODELS: ``natural`` (mask_rcnn_R_50_FPN_3x at 800 / 1333 on the five photographs of
detectron2_r50_fpn/natural), ``r50_c4`` and ``x101_fpn`` (the model-zoo oracles, at 512 on their three
512 x 512 photographs), ``keypoints`` (keypoint_rcnn_R_50_FPN_3x at 800 / 1333 on its six photographs).
Detectron2 is imported from D2SRC without its C extension: these models need none of it (their RoIAlign
and NMS are torchvision's ops, loaded through tv_oracle's shim). Run seed 0 too: the shared oracles were
made with the extension built, and the script compares its seed-0 outputs with theirs (meta.json).

Weights: the shared generators' (d2_weights, d2_zoo_weights, d2_kp_weights) for each seed, written as a
model-zoo pickle in OUTDIR and deleted after the run (140 to 430 MB). Photographs: the shared oracle's own
(its seed-0 file), fed BGR through ``DefaultPredictor``'s steps (the test resize, the model in eval mode,
float32, 2 threads). Writes OUTDIR/<oracle>_seed{S}.npz (compressed), per image i, in the shared oracles'
conventions but without photographs, heatmaps and intermediate stages:
  img{i}_boxes [n,4] (original pixels)   img{i}_scores [n]   img{i}_boxes_resized [n,4] (before rescaling)
  img{i}_resized_hw [2]   img{i}_padded_hw [2]
  mask models: img{i}_classes [n] (0-based), img{i}_masks_packed (np.packbits of the pasted masks, last axis)
  keypoints: img{i}_keypoints [n,17,3] (x, y in original pixels, Detectron2's keypoint score)
and OUTDIR/meta.json: versions, detections per image, and the seed-0 comparison. Outputs already in OUTDIR
are not made again, only compared.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORACLES = os.path.join(REPO, "..", "shared", "oracles")
for folder in ("torchvision_r50_fpn", "detectron2_r50_fpn", "detectron2_zoo", "detectron2_kp_r50_fpn"):
  sys.path.insert(0, os.path.join(ORACLES, folder))
import d2_kp_weights  # noqa: E402
import d2_weights  # noqa: E402
import d2_zoo_weights  # noqa: E402
import tv_oracle  # noqa: E402  (loads torchvision's CPU ops through its shim)
import torch  # noqa: E402

THREADS = 2
ZOO_CONFIG = "configs/COCO-InstanceSegmentation/mask_rcnn_{}_3x.yaml"
# oracle -> (config, test size (None: the config's 800 / 1333), weight writer (seed, path), seed-0 file)
MODELS = {
    "natural": (ZOO_CONFIG.format("R_50_FPN"), None, d2_weights.write, "detectron2_r50_fpn/natural"),
    "r50_c4": (ZOO_CONFIG.format("R_50_C4"), 512, lambda seed, path: d2_zoo_weights.write("r50_c4", seed, path),
               "detectron2_zoo/r50_c4"),
    "x101_fpn": (ZOO_CONFIG.format("X_101_32x8d_FPN"), 512,
                 lambda seed, path: d2_zoo_weights.write("x101_fpn", seed, path), "detectron2_zoo/x101_fpn"),
    "keypoints": ("configs/COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml", None, d2_kp_weights.write,
                  "detectron2_kp_r50_fpn"),
}


def photographs(oracle: str) -> list[np.ndarray]:
  """The oracle's photographs (uint8 RGB), from its shared seed-0 file."""
  outputs = np.load(os.path.join(ORACLES, MODELS[oracle][3], "outputs_seed0.npz"))
  if "images" in outputs:
    return list(outputs["images"])
  return [outputs[f"img{i}_image"] for i in range(sum(k.endswith("_image") for k in outputs.files))]


def predictor(d2src: str, oracle: str, weights: str):
  """Detectron2's model (CPU, weights loaded) and its test resize for the oracle."""
  from detectron2.checkpoint import DetectionCheckpointer
  from detectron2.config import get_cfg
  from detectron2.data import transforms
  from detectron2.modeling import build_model

  config, size, _, _ = MODELS[oracle]
  cfg = get_cfg()
  cfg.merge_from_file(os.path.join(d2src, config))
  cfg.MODEL.DEVICE = "cpu"
  if oracle != "keypoints":
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = d2_weights.NUM_CLASSES
  if size:
    cfg.INPUT.MIN_SIZE_TEST = cfg.INPUT.MAX_SIZE_TEST = size
  model = build_model(cfg).eval()
  DetectionCheckpointer(model).load(weights)
  resize = transforms.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
  return model, resize


def run_image(model, resize, rgb: np.ndarray) -> dict:
  """DefaultPredictor's steps on one photograph, keeping the boxes before and after the rescale."""
  from detectron2.modeling.postprocessing import detector_postprocess

  bgr = rgb[:, :, ::-1]
  resized = resize.get_transform(bgr).apply_image(bgr)
  tensor = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
  height, width = rgb.shape[:2]
  with torch.no_grad():
    raw = model.inference([{"image": tensor, "height": height, "width": width}], do_postprocess=False)[0]
    boxes_resized = raw.pred_boxes.tensor.clone()
    final = detector_postprocess(raw, height, width)
  step = model.backbone.size_divisibility
  padded = [-(-s // step) * step for s in resized.shape[:2]] if step else list(resized.shape[:2])
  result = {"boxes": final.pred_boxes.tensor.numpy(), "scores": final.scores.numpy(),
            "boxes_resized": boxes_resized.numpy(), "resized_hw": np.array(resized.shape[:2], np.int32),
            "padded_hw": np.array(padded, np.int32)}
  if final.has("pred_keypoints"):
    result["keypoints"] = final.pred_keypoints.numpy()
  if final.has("pred_masks"):
    result["classes"] = final.pred_classes.numpy().astype(np.int32)
    result["masks_packed"] = np.packbits(final.pred_masks.numpy().astype(bool), axis=-1)
  return result


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Pairwise IoU of boxes a [n,4] and b [m,4] (x1, y1, x2, y2)."""
  lo, hi = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
  inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
  area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=-1)
  return inter / (area(a)[:, None] + area(b)[None] - inter)


def compare(ours: dict, reference, images: int) -> dict:
  """This run's seed-0 detections against the shared oracle's: each of its detections paired with our
  best-overlapping one of the same class (order can differ where scores nearly tie). Returns the
  fraction paired at box IoU > 0.999 (worst image) and the largest differences over the pairs."""
  worst = {"same_counts": True, "paired_at_iou_0.999": 1.0}
  for i in range(images):
    mine, theirs = (np.asarray(m[f"img{i}_boxes"]) for m in (ours, reference))
    worst["same_counts"] &= len(mine) == len(theirs)
    if not len(theirs):
      continue
    iou = _iou(theirs, mine) if len(mine) else np.zeros((len(theirs), 1))
    if f"img{i}_classes" in ours:
      iou = np.where(reference[f"img{i}_classes"][:, None] == ours[f"img{i}_classes"][None], iou, 0.0)
    best = iou.argmax(1)
    paired = iou.max(1) > 0.999
    worst["paired_at_iou_0.999"] = min(worst["paired_at_iou_0.999"], float(paired.mean()))
    r, j = np.flatnonzero(paired), best[paired]
    for key in ("boxes", "scores", "keypoints"):
      if f"img{i}_{key}" in ours and len(r):
        diff = np.abs(ours[f"img{i}_{key}"][j] - reference[f"img{i}_{key}"][r]).max()
        worst[key] = max(worst.get(key, 0.0), float(diff))
    if f"img{i}_masks_packed" in ours and len(r):
      a, b = (np.unpackbits(m[f"img{i}_masks_packed"], axis=-1) for m in (ours, reference))
      worst["mask_pixels_differing"] = max(worst.get("mask_pixels_differing", 0), int((a[j] != b[r]).sum()))
  return worst


def run_oracle(d2src: str, name: str, seed: int, photos: list[np.ndarray], weights: str) -> dict:
  """Detectron2's outputs for every photograph, the weights written at ``weights`` for the run."""
  MODELS[name][2](seed, weights)
  model, resize = predictor(d2src, name, weights)
  os.remove(weights)
  outputs = {}
  for i, photo in enumerate(photos):
    result = run_image(model, resize, photo)
    outputs.update({f"img{i}_{key}": value for key, value in result.items()})
    print(f"{name} seed {seed} image {i}: {len(result['scores'])} detections", flush=True)
  return outputs


def main(d2src: str, outdir: str, names: list[str], seeds: list[int]) -> None:
  sys.path.insert(0, d2src)
  import detectron2

  torch.set_num_threads(THREADS)
  os.makedirs(outdir, exist_ok=True)
  meta_path = os.path.join(outdir, "meta.json")
  meta = {"detectron2": detectron2.__version__, "torch": torch.__version__, "oracles": {}}
  if os.path.exists(meta_path):
    with open(meta_path) as f:
      meta["oracles"] = json.load(f)["oracles"]
  for name in names:
    photos = photographs(name)
    for seed in seeds:
      path = os.path.join(outdir, f"{name}_seed{seed}.npz")
      if os.path.exists(path):  # made by an earlier run: only compared again
        outputs = dict(np.load(path))
      else:
        outputs = run_oracle(d2src, name, seed, photos, os.path.join(outdir, f"{name}_seed{seed}.pkl"))
        np.savez_compressed(path, **outputs)
      entry = {"config": MODELS[name][0], "detections_per_image": [len(outputs[f"img{i}_scores"])
                                                                   for i in range(len(photos))]}
      shared = os.path.join(ORACLES, MODELS[name][3], f"outputs_seed{seed}.npz")
      if os.path.exists(shared):
        entry["against_shared_oracle"] = compare(outputs, np.load(shared), len(photos))
      meta["oracles"][f"{name}_seed{seed}"] = entry
      print(json.dumps({f"{name}_seed{seed}": entry}), flush=True)
      with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1)


if __name__ == "__main__":
  if len(sys.argv) < 5 or not set(sys.argv[3].split(",")) <= set(MODELS):
    sys.exit(__doc__)
  main(sys.argv[1], sys.argv[2], sys.argv[3].split(","), [int(s) for s in sys.argv[4:]])
