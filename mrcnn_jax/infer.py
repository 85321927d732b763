"""Detect objects in image files with a trained model: pictures and COCO-style JSON.

    python -m mrcnn_jax.infer --workdir W --images a.jpg b.png --out DIR [--score_threshold 0.05]

writes DIR/<name>.png (masks, boxes, class names and scores drawn on the image; <name>-2, -3, ...
when inputs share a name; a JPEG scaled to MAX_PICTURE_SIDE for larger images) and
DIR/detections.json (COCO-style results: bbox [x, y, w, h], score, category_id, RLE segmentation,
file_name as given, picture). Score threshold 0.05 by default, as ``mrcnn_jax.predict``'s.
Exit code 2: a user error (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from mrcnn_jax import compile_cache, errors
from mrcnn_jax.inference import SCORE_THRESHOLD

MAX_PICTURE_SIDE = 2048  # larger pictures are scaled down to this and saved as JPEG


def picture_names(paths) -> list[str]:
  """File stems for the pictures of ``paths``: each input's stem, made unique with -2, -3, ..."""
  names = []
  for path in paths:
    stem = os.path.splitext(os.path.basename(path))[0]
    name, n = stem, 1
    while name in names:
      n += 1
      name = f"{stem}-{n}"
    names.append(name)
  return names


def save_picture(picture, out: str, name: str) -> str:
  """Saves ``picture`` as ``<out>/<name>.png``, or scaled to MAX_PICTURE_SIDE as a JPEG when larger
  (a 4000x3000 PNG can take 36 MB); returns the file name."""
  if max(picture.size) <= MAX_PICTURE_SIDE:
    picture.save(os.path.join(out, f"{name}.png"))
    return f"{name}.png"
  picture.thumbnail((MAX_PICTURE_SIDE, MAX_PICTURE_SIDE))
  picture.save(os.path.join(out, f"{name}.jpg"), quality=90)
  return f"{name}.jpg"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m mrcnn_jax.infer",
                                   description=__doc__.split("\n\n", maxsplit=1)[0],
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--workdir", required=True, help="training workdir (config.json + checkpoints/)")
  parser.add_argument("--images", nargs="+", required=True, help="image files (any size, RGB/gray/RGBA)")
  parser.add_argument("--out", required=True, help="folder for the drawn pictures and detections.json")
  parser.add_argument("--score_threshold", type=float, default=SCORE_THRESHOLD,
                      help="keep detections scoring above this, as mrcnn_jax.predict (0.5: fewer, "
                      "surer ones in the pictures)")
  parser.add_argument("--nms_threshold", type=float, default=None,
                      help="per-class NMS IoU (None: config.model.roi.nms_threshold)")
  parser.add_argument("--max_detections", type=int, default=None,
                      help="per image (None: config.model.roi.detections_per_image)")
  return errors.run_cli(_run, parser, parser.parse_args(argv))


def _run(parser, args) -> int:
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
  for b, (path, name) in enumerate(zip(args.images, picture_names(args.images))):
    one = detections.image(b)
    picture = save_picture(draw_detections(images[b], one), args.out, name)
    n = len(one["scores"])
    for r in detections_to_coco(b, one["boxes"], one["scores"], one["classes"], np.ones(n, bool),
                                range(1, len(model.config.class_names) + 1), one["masks"]):
      results.append(dict(r, file_name=path, picture=picture))
    print(f"{path}: {n} detections -> {picture}")
  with open(os.path.join(args.out, "detections.json"), "w") as f:
    json.dump(results, f)
  print(f"wrote {len(images)} pictures and detections.json to {args.out} (score > {args.score_threshold})")
  return 0


if __name__ == "__main__":
  compile_cache.enable()
  raise SystemExit(main())
