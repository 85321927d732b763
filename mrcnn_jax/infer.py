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

from mrcnn_jax import compile_cache, errors, outputs
from mrcnn_jax.images import read_image
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


def picture_file(name: str, size: tuple[int, int]) -> str:
  """The picture's file name for an image of ``size`` (w, h): PNG, or a JPEG scaled to
  MAX_PICTURE_SIDE when larger (a 4000x3000 PNG can take 36 MB)."""
  return f"{name}.png" if max(size) <= MAX_PICTURE_SIDE else f"{name}.jpg"


def save_picture(picture, path: str):
  """Saves ``picture`` at ``path`` (from ``picture_file``), complete or not at all."""
  with outputs.atomic_path(path) as tmp:
    if path.endswith(".jpg"):
      picture.thumbnail((MAX_PICTURE_SIDE, MAX_PICTURE_SIDE))
      picture.save(tmp, format="JPEG", quality=90)
    else:
      picture.save(tmp, format="PNG")


def main(argv=None) -> int:
  parser = errors.ArgumentParser(prog="python -m mrcnn_jax.infer",
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


def check_args(args):
  """UserError for a bad argument, before any image is read or model loaded."""
  if not 0 <= args.score_threshold <= 1:
    raise errors.UserError(f"--score_threshold must be in [0, 1], got {args.score_threshold}")
  if args.nms_threshold is not None and not 0 < args.nms_threshold <= 1:
    raise errors.UserError(f"--nms_threshold must be in (0, 1], got {args.nms_threshold}")
  if args.max_detections is not None and args.max_detections < 1:
    raise errors.UserError(f"--max_detections must be at least 1, got {args.max_detections}")
  for path in args.images:
    if os.path.isdir(path):
      raise errors.UserError(f"--images: {path} is a folder: pass its image files ({os.path.join(path, '*.jpg')})")
    if not os.path.isfile(path):
      raise errors.UserError(f"--images: no such file: {path}")


def _run(parser, args) -> int:  # pylint: disable=unused-argument
  import mrcnn_jax  # pylint: disable=import-outside-toplevel
  from mrcnn_jax.coco import detections_to_coco  # pylint: disable=import-outside-toplevel
  from mrcnn_jax.visualize import draw_detections  # pylint: disable=import-outside-toplevel

  check_args(args)
  images = []
  for path in args.images:
    try:
      images.append(read_image(path))
    except OSError as e:
      raise errors.UserError(f"--images: cannot read {path}: {e}") from e
  pictures = [picture_file(name, image.shape[1::-1]) for name, image in zip(picture_names(args.images), images)]
  json_path = os.path.join(args.out, "detections.json")
  outputs.check_not_inputs([os.path.join(args.out, p) for p in pictures] + [json_path], args.images, "--out")
  try:
    os.makedirs(args.out, exist_ok=True)
  except OSError as e:
    raise errors.UserError(f"--out: cannot create {args.out}: {e.strerror}") from e
  if not os.access(args.out, os.W_OK):
    raise errors.UserError(f"--out: cannot write to {args.out}")
  model = mrcnn_jax.load(args.workdir)
  detections = mrcnn_jax.predict(model, images, score_threshold=args.score_threshold,
                                 nms_threshold=args.nms_threshold, max_detections=args.max_detections)
  results = []
  for b, (path, picture) in enumerate(zip(args.images, pictures)):
    one = detections.image(b)
    save_picture(draw_detections(images[b], one, skeleton=model.config.data.keypoint_skeleton),
                 os.path.join(args.out, picture))
    n = len(one["scores"])
    for r in detections_to_coco(b, one["boxes"], one["scores"], one["classes"], np.ones(n, bool),
                                range(1, len(model.config.class_names) + 1), one["masks"],
                                one.get("keypoints")):
      results.append(dict(r, file_name=path, picture=picture))
    print(f"{path}: {n} detections -> {picture}")
  outputs.write_text(json_path, json.dumps(results))
  print(f"wrote {len(images)} pictures and detections.json to {args.out} (score > {args.score_threshold})")
  return 0


if __name__ == "__main__":
  compile_cache.enable()
  raise SystemExit(main())
