"""torchvision's Mask R-CNN at its default transform (800 / 1333) on five photographs at their own size.

Not part of the project, and torch is not a dependency of it: run this only in the private torch venv that
../shared/oracles/torchvision_r50_fpn/tv_oracle.py's docstring describes (CPU torch 2.13 wheel of this
machine, torchvision 0.28.0 installed with --no-deps, numpy, pillow), after tv_oracle.py has written
ORACLE_DIR/tv_maskrcnn_r50_fpn_random.pth:

    nice <venv>/bin/python scripts/oracles/tv_natural_oracle.py [ORACLE_DIR [OUTDIR]]

ORACLE_DIR defaults to /work/tv_oracle, OUTDIR to ORACLE_DIR/natural. The model is
maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5) with FrozenBatchNorm2d (as
tv_oracle.py builds it) and torchvision's default transform: min_size 800, max_size 1333, box score
threshold 0.05. It runs in eval mode, float32, 2 threads, one image per call, on the five photographs of
../shared/oracles/detectron2_r50_fpn/natural/ (coffee 400x600, chelsea 300x451, rocket 427x640, astronaut
rows 0-383, astronaut columns 80-431: landscape and portrait).

Writes OUTDIR/tv_outputs.npz, per image i:
  img{i}_image [H,W,3] uint8 RGB      img{i}_boxes [n,4] x1,y1,x2,y2 in original pixels
  img{i}_labels [n] int64, 1..4       img{i}_scores [n] float32
  img{i}_masks [n,H,ceil(W/8)] uint8  pasted probabilities > 0.5, bit-packed along W:
                                      np.unpackbits(m, axis=-1)[..., :W].astype(bool) -> [n,H,W]
  img{i}_resized_hw [2], img{i}_padded_hw [2]  what GeneralizedRCNNTransform fed the backbone
  img{i}_seconds                      wall time of model([image]): median of 3 after a warm-up, 2 threads
  img0_input [1,3,h_pad,w_pad] float32  image 0's normalised, resized, zero-padded batch tensor
and OUTDIR/meta.json: the resize rule with torchvision / torch file:line citations; per image the sizes, a
check that the rule reproduces the transform bit for bit, the SHA-256 of the input tensor (float32, NCHW),
detection statistics and margins (uncapped count, scores near the threshold), and the run times.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import statistics
import sys
import time

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORACLES = os.path.join(REPO, "..", "shared", "oracles")
sys.path.insert(0, os.path.join(ORACLES, "torchvision_r50_fpn"))
import tv_oracle  # noqa: E402  (loads torchvision's CPU ops through its shim)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from torchvision.models.detection import maskrcnn_resnet50_fpn  # noqa: E402

PHOTOS_DIR = os.path.join(ORACLES, "detectron2_r50_fpn", "natural")
NUM_IMAGES = 5
THREADS = 2
REPEATS = 3
MASK_THRESHOLD = 0.5


def cite(module, relpath: str, pattern: str, after: str = "") -> str:
  """'<package>/<relpath>:<line>: <text>': the first line of the installed source matching pattern that
  follows the first line matching after."""
  with open(os.path.join(os.path.dirname(module.__file__), relpath)) as f:
    lines = f.read().splitlines()
  start = next(n for n, line in enumerate(lines) if re.search(after, line))
  n = next(n for n in range(start, len(lines)) if re.search(pattern, lines[n]))
  return f"{module.__name__}/{relpath}:{n + 1}: {lines[n].strip()}"


def resize_rule() -> list[dict]:
  """The input pipeline of GeneralizedRCNNTransform at test time, each step cited."""
  TR, FN, UP = "models/detection/transform.py", "nn/functional.py", "include/ATen/native/UpSample.h"
  short = [s for s in range(1, 2001) if int(s * (800 / s)) != 800]
  tv = lambda p: cite(torchvision, TR, p)  # noqa: E731
  th = lambda path, p, after="": cite(torch, path, p, after)  # noqa: E731
  return [
      {"step": "input: RGB float32 in [0, 1] (uint8 / 255); normalise first: (x - mean) / std, float32",
       "source": [tv(r"image = self\.normalize\(image\)"), tv(r"return \(image - mean\[:, None, None\]\)")]},
      {"step": "scale = min(800 / short side, 1333 / long side) in Python float64 (test: the last min_size)",
       "source": [tv(r"size = self\.min_size\[-1\]"), tv(r"scale_factor = min\(self_min_size / min_size")]},
      {"step": "output size = int(side * scale) per axis: float64 product truncated (floor). The short side comes "
               "out one short of min_size when side * (800 / side) rounds below 800: "
               f"{len(short)} sides in 1..2000 ({short[:8]}, ...)",
       "source": [tv(r"recompute_scale_factor = True"), th(FN, r"_sym_int\(input\.size\(i \+ 2\) \* scale_factors")]},
      {"step": "the scale is then recomputed from the integer sizes (scale_factors = None): ratio = float32(in) / "
               "out per axis, in float32 for a float32 image",
       "source": [th(FN, r"The C\+\+ code will recompute it based on the \(integer\) output size"),
                  th(UP, r": \(static_cast<scalar_t>\(input_size\) / output_size\)")]},
      {"step": "bilinear, align_corners=False, antialias=False on the normalised float image: source coordinate "
               "src = ratio * (d + 0.5) - 0.5 (float32), clamped at 0; i0 = min(floor(src), in - 1), "
               "i1 = i0 + (i0 < in - 1), w1 = clamp(src - i0, 0, 1), w0 = 1 - w1; equal sizes copy",
       "source": [tv(r'mode="bilinear"'), tv(r"align_corners=False"),
                  th(UP, r"scalar_t src_idx = scale \* \(dst_index \+ static_cast<scalar_t>\(0\.5\)\) -"),
                  th(UP, r"return \(!cubic && src_idx < static_cast<scalar_t>\(0\)\)"),
                  th(UP, r"input_index = std::min\(static_cast<int64_t>\(floorf\(real_input_index\)\)"),
                  th(UP, r"int64_t offset = \(input_index0 < input_size - 1\) \? 1 : 0;"),
                  th(UP, r"if \(output_size == input_size\) \{", after=r"void compute_source_index_and_lambda")]},
      {"step": "batch_images: pad bottom / right with zeros after normalisation (zero = the mean colour) to "
               "ceil(side / 32) * 32",
       "source": [tv(r"max_size\[1\] = int\(math\.ceil\(float\(max_size\[1\]\) / stride\) \* stride\)"),
                  tv(r"batched_imgs = images\[0\]\.new_full\(batch_shape, 0\)")]},
      {"step": "outputs: boxes scaled back by resized / original (float32 ratios), masks pasted at the original size",
       "source": [tv(r"boxes = resize_boxes\(boxes, im_s, o_im_s\)"),
                  tv(r"masks = paste_masks_in_image\(masks, boxes, o_im_s\)")]},
  ]


def own_transform(x: torch.Tensor, mean, std) -> tuple[torch.Tensor, tuple[int, int]]:
  """The rule of resize_rule() written out: [3,H,W] in [0,1] -> ([1,3,h_pad,w_pad], (h, w))."""
  x = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
  h, w = x.shape[-2:]
  scale = min(800 / min(h, w), 1333 / max(h, w))
  size = (int(h * scale), int(w * scale))
  x = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)
  pad = [math.ceil(s / 32) * 32 for s in size]
  return F.pad(x, (0, pad[1] - size[1], 0, pad[0] - size[0])), size


def build_model(checkpoint: str) -> torch.nn.Module:
  model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5)
  assert tv_oracle._freeze_bn(model) == 53  # pylint: disable=protected-access
  model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
  tr = model.transform
  assert (tuple(tr.min_size), tr.max_size, tr.size_divisible) == ((800,), 1333, 32), tr
  assert model.roi_heads.score_thresh == 0.05 and model.roi_heads.detections_per_img == 100
  return model.eval()


def score_stats(scores: np.ndarray) -> dict:
  gaps = -np.diff(scores)
  return {"n": int(scores.size), "max": float(scores.max()), "min": float(scores.min()),
          "median": float(np.median(scores)), "min_gap": float(gaps.min()) if gaps.size else None,
          "n_over_0.5": int((scores > 0.5).sum())}


def run_image(model, img: np.ndarray) -> tuple[dict, dict]:
  """One photograph img [H,W,3] uint8: (arrays for the npz, its meta.json entry)."""
  x = tv_oracle.to_tensor(img)
  with torch.no_grad():
    il, _ = model.transform([x])
    mine, size = own_transform(x, model.transform.image_mean, model.transform.image_std)
    torch.set_num_threads(1)  # 3 channels on 1 thread take ATen's channels-last kernel (UpSampleKernel.cpp)
    one_thread = float((own_transform(x, model.transform.image_mean, model.transform.image_std)[0] - mine).abs().max())
    torch.set_num_threads(THREADS)
    outs, seconds = [], []
    for k in range(REPEATS + 1):
      t = time.perf_counter()
      outs.append(model([x])[0])
      if k:
        seconds.append(time.perf_counter() - t)
    model.roi_heads.detections_per_img = 1000
    uncapped = model([x])[0]["scores"].numpy()
    model.roi_heads.detections_per_img = 100
  d = outs[-1]
  same = all(torch.equal(o[k], d[k]) for o in outs for k in d)
  h, w = img.shape[:2]
  resized, padded = tuple(il.image_sizes[0]), tuple(il.tensors.shape[-2:])
  masks = (d["masks"][:, 0] > MASK_THRESHOLD).numpy()
  scores = d["scores"].numpy()
  labels = d["labels"].numpy()
  arrays = {"image": img, "boxes": d["boxes"].numpy(), "labels": labels, "scores": scores,
            "masks": np.packbits(masks, axis=-1), "resized_hw": np.array(resized), "padded_hw": np.array(padded),
            "seconds": np.float64(statistics.median(seconds)), "input": il.tensors.numpy()}
  n = len(scores)
  area = np.prod(np.diff(arrays["boxes"].reshape(n, 2, 2), axis=1)[:, 0], axis=1)
  entry = {
      "size_hw": [h, w], "resized_hw": list(resized), "padded_hw": list(padded),
      "scale_float64": min(800 / min(h, w), 1333 / max(h, w)),
      "ratio_float32_hw": [float(np.float32(a) / np.float32(b)) for a, b in zip((h, w), resized)],
      "own_rule_equals_transform": bool(size == resized and torch.equal(mine, il.tensors)),
      "one_thread_max_abs_diff": one_thread,
      "input_sha256": hashlib.sha256(il.tensors.numpy().tobytes()).hexdigest(),
      "detections": n, "labels": np.bincount(labels, minlength=5)[1:].tolist(), "scores": score_stats(scores),
      "mask_pixels_over_box_area_median": float(np.median(masks.reshape(n, -1).sum(1) / area)) if n else None,
      "seconds": [round(s, 2) for s in seconds], "repeat_runs_bit_equal": same,
      "margins": {"detections_uncapped": int(uncapped.size),
                  "score_gap_at_cap": float(uncapped[99] - uncapped[100]) if uncapped.size > 100 else None,
                  "scores_within_1e-4_above_thresh": int((uncapped < 0.05 + 1e-4).sum())},
  }
  return arrays, entry


def main(oracle_dir: str, outdir: str) -> int:
  torch.set_num_threads(THREADS)
  os.makedirs(outdir, exist_ok=True)
  checkpoint = os.path.join(oracle_dir, tv_oracle.CHECKPOINT)
  model = build_model(checkpoint)
  with open(os.path.join(PHOTOS_DIR, "meta.json")) as f:
    d2_meta = json.load(f)["per_image"]
  arrays, per_image = {}, []
  for i in range(NUM_IMAGES):
    img = np.asarray(Image.open(os.path.join(PHOTOS_DIR, f"img{i}.png")).convert("RGB"))
    a, entry = run_image(model, img)
    if i != 0:
      del a["input"]
    arrays.update({f"img{i}_{k}": v for k, v in a.items()})
    per_image.append({"photo": d2_meta[i]["photo"], "source": d2_meta[i]["source"], **entry})
    print(f"img{i} {d2_meta[i]['photo']}: {entry['size_hw']} -> {entry['resized_hw']} -> {entry['padded_hw']}, "
          f"{entry['detections']} detections, {arrays[f'img{i}_seconds']:.2f} s", flush=True)
  np.savez_compressed(os.path.join(outdir, "tv_outputs.npz"), **arrays)
  meta = {
      "what": "torchvision maskrcnn_resnet50_fpn at its default transform on five photographs at their own size",
      "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": np.__version__},
      "shim": tv_oracle.SHIM,
      "checkpoint": {"file": checkpoint, "sha256": hashlib.sha256(open(checkpoint, "rb").read()).hexdigest()},
      "config": {"num_classes": 5, "min_size": 800, "max_size": 1333, "box_score_thresh": 0.05,
                 "detections_per_img": 100, "norm": "FrozenBatchNorm2d", "dtype": "float32", "threads": THREADS,
                 "call": "model([image]) per image, eval, torch.no_grad"},
      "images": os.path.abspath(PHOTOS_DIR),
      "masks": "pasted probabilities > 0.5, np.packbits(axis=-1): np.unpackbits(m, axis=-1)[..., :W].astype(bool)",
      "seconds": f"median of {REPEATS} model([image]) calls after one warm-up, {THREADS} threads, on a shared 2-core "
                 "machine: not a benchmark",
      "resize_rule": resize_rule(),
      "per_image": per_image,
      "npz_keys": sorted(arrays),
  }
  with open(os.path.join(outdir, "meta.json"), "w") as f:
    json.dump(meta, f, indent=1)
  print(f"written to {outdir}: detections {[p['detections'] for p in per_image]}")
  return 0


if __name__ == "__main__":
  if len(sys.argv) > 3:
    raise SystemExit(__doc__)
  ORACLE_DIR = sys.argv[1] if len(sys.argv) > 1 else "/work/tv_oracle"
  raise SystemExit(main(ORACLE_DIR, sys.argv[2] if len(sys.argv) > 2 else os.path.join(ORACLE_DIR, "natural")))
