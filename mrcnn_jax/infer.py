"""Detect objects in image files with a trained model: pictures and COCO-style JSON.

    python -m mrcnn_jax.infer --workdir W --images a.jpg b.png --out DIR

writes DIR/<name>.png (masks, boxes, class names and scores drawn on the image) and
DIR/detections.json (COCO-style results: bbox [x, y, w, h], score, category_id, RLE segmentation).
The Python API is ``mrcnn_jax.predict(model, images)``.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m mrcnn_jax.infer", description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True, help="training workdir (config.json + checkpoints/)")
  parser.add_argument("--images", nargs="+", required=True, help="image files (any size, RGB/gray/RGBA)")
  parser.add_argument("--out", required=True, help="folder for the drawn PNGs and detections.json")
  parser.add_argument("--score_threshold", type=float, default=0.5)
  parser.add_argument("--nms_threshold", type=float, default=None)
  parser.add_argument("--max_detections", type=int, default=None)
  args = parser.parse_args(argv)

  from PIL import Image  # pylint: disable=import-outside-toplevel
  import mrcnn_jax  # pylint: disable=import-outside-toplevel
  from mrcnn_jax.coco import detections_to_coco  # pylint: disable=import-outside-toplevel
  from mrcnn_jax.visualize import draw_detections  # pylint: disable=import-outside-toplevel

  for path in args.images:
    if not os.path.isfile(path):
      parser.error(f"--images: no such file: {path}")
  model = mrcnn_jax.load(args.workdir)
  images = []
  for path in args.images:
    try:
      images.append(np.asarray(Image.open(path).convert("RGB")))
    except OSError as e:
      parser.error(f"--images: cannot read {path}: {e}")
  detections = mrcnn_jax.predict(model, images, score_threshold=args.score_threshold,
                       nms_threshold=args.nms_threshold, max_detections=args.max_detections)
  os.makedirs(args.out, exist_ok=True)
  results = []
  for b, path in enumerate(args.images):
    name = os.path.splitext(os.path.basename(path))[0]
    one = detections.image(b)
    draw_detections(images[b], one).save(os.path.join(args.out, f"{name}.png"))
    n = len(one["scores"])
    for r in detections_to_coco(b, one["boxes"], one["scores"], one["classes"], np.ones(n, bool),
                                range(1, len(model.config.class_names) + 1), one["masks"]):
      results.append(dict(r, file_name=os.path.basename(path)))
  with open(os.path.join(args.out, "detections.json"), "w") as f:
    json.dump(results, f)
  for b, path in enumerate(args.images):
    print(f"{path}: {int(detections.num_detections[b])} detections")
  print(f"wrote {len(images)} PNGs and detections.json to {args.out}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
