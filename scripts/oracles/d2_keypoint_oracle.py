"""The real Detectron2's keypoint_rcnn_R_50_FPN_3x at its default test size, for more weight seeds.

Not part of the project, and neither torch nor Detectron2 is a dependency of it: run this in the private
torch venv of ../shared/oracles/torchvision_r50_fpn/tv_oracle.py's docstring, with Detectron2's pure-Python
dependencies added (fvcore iopath omegaconf yacs termcolor tabulate cloudpickle pycocotools hydra-core)
and a Detectron2 v0.6 source tree (commit 02b5c4e2, the shared oracle's) as D2SRC:

    nice <venv>/bin/python scripts/oracles/d2_keypoint_oracle.py D2SRC OUTDIR SEED [SEED ...]

Detectron2 is imported from D2SRC without its C extension: this model needs none of it (its RoIAlign
and NMS are torchvision's ops, loaded through tv_oracle's shim). Run seed 0 too: it must give
../shared/oracles/detectron2_kp_r50_fpn/outputs_seed0.npz (made with the extension built), which the
script compares and records in OUTDIR/meta.json.

Weights: d2_kp_weights.py's calibrated random Keypoint R-CNN of each seed, written as a model-zoo pickle
in OUTDIR and deleted after the run (237 MB). Photographs: the shared oracle's six (its img{i}_image),
fed BGR to ``DefaultPredictor``'s steps (ResizeShortestEdge 800 / 1333, the model in eval mode, float32,
2 threads). Writes OUTDIR/outputs_seed{S}.npz, per image i, in the shared oracle's layout without its
heatmaps and images (a few kB per seed):
  img{i}_boxes [n,4] (original pixels)   img{i}_scores [n]   img{i}_keypoints [n,17,3] (x, y, score)
  img{i}_boxes_resized [n,4]             img{i}_resized_hw [2]   img{i}_padded_hw [2]
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORACLES = os.path.join(REPO, "..", "shared", "oracles")
ORACLE = os.path.join(ORACLES, "detectron2_kp_r50_fpn")
sys.path.insert(0, os.path.join(ORACLES, "torchvision_r50_fpn"))
sys.path.insert(0, ORACLE)
import d2_kp_weights  # noqa: E402
import tv_oracle  # noqa: E402  (loads torchvision's CPU ops through its shim)
import torch  # noqa: E402

NUM_IMAGES = 6
THREADS = 2
CONFIG = "configs/COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml"
KEYS = ("boxes", "scores", "keypoints", "boxes_resized", "resized_hw", "padded_hw")


def predictor(d2src: str, weights: str):
  """Detectron2's model and test resize for the keypoint config, CPU, weights loaded."""
  from detectron2.checkpoint import DetectionCheckpointer
  from detectron2.config import get_cfg
  from detectron2.data import transforms
  from detectron2.modeling import build_model

  cfg = get_cfg()
  cfg.merge_from_file(os.path.join(d2src, CONFIG))
  cfg.MODEL.DEVICE = "cpu"
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
  padded = [-(-s // 32) * 32 for s in resized.shape[:2]]
  return {"boxes": final.pred_boxes.tensor.numpy(), "scores": final.scores.numpy(),
          "keypoints": final.pred_keypoints.numpy(), "boxes_resized": boxes_resized.numpy(),
          "resized_hw": np.array(resized.shape[:2], np.int32), "padded_hw": np.array(padded, np.int32)}


def compare(ours: dict, reference) -> dict:
  """Largest differences against an existing oracle file of the same seed."""
  worst = {"same_counts": True, "boxes": 0.0, "scores": 0.0, "keypoints": 0.0}
  for i in range(NUM_IMAGES):
    if ours[f"img{i}_boxes"].shape != reference[f"img{i}_boxes"].shape:
      worst["same_counts"] = False
      continue
    for key in ("boxes", "scores", "keypoints"):
      diff = np.abs(ours[f"img{i}_{key}"] - reference[f"img{i}_{key}"]).max(initial=0.0)
      worst[key] = max(worst[key], float(diff))
  return worst


def main(d2src: str, outdir: str, seeds: list[int]) -> None:
  sys.path.insert(0, d2src)
  import detectron2

  torch.set_num_threads(THREADS)
  os.makedirs(outdir, exist_ok=True)
  photos = np.load(os.path.join(ORACLE, "outputs_seed0.npz"))
  meta = {"detectron2": detectron2.__version__, "detectron2_source": os.path.abspath(d2src),
          "torch": torch.__version__, "config": CONFIG, "seeds": {}}
  for seed in seeds:
    weights = os.path.join(outdir, f"d2_kp_weights_seed{seed}.pkl")
    d2_kp_weights.write(seed, weights)
    model, resize = predictor(d2src, weights)
    outputs = {}
    for i in range(NUM_IMAGES):
      result = run_image(model, resize, photos[f"img{i}_image"])
      outputs.update({f"img{i}_{key}": result[key] for key in KEYS})
      print(f"seed {seed} image {i}: {len(result['scores'])} detections", flush=True)
    os.remove(weights)
    np.savez_compressed(os.path.join(outdir, f"outputs_seed{seed}.npz"), **outputs)
    entry = {"detections_per_image": [len(outputs[f"img{i}_scores"]) for i in range(NUM_IMAGES)]}
    shared = os.path.join(ORACLE, f"outputs_seed{seed}.npz")
    if os.path.exists(shared):
      entry["against_shared_oracle"] = compare(outputs, np.load(shared))
    meta["seeds"][str(seed)] = entry
    print(json.dumps({seed: entry}), flush=True)
  with open(os.path.join(outdir, "meta.json"), "w") as f:
    json.dump(meta, f, indent=1)


if __name__ == "__main__":
  if len(sys.argv) < 4:
    sys.exit(__doc__)
  main(sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]])
