"""Jitted inference on images of any size: ``mrcnn_jax.predict(model, images) -> Detections``.

Images are resized and padded onto the model's fixed canvas exactly as the input pipeline does, run
through one compiled ``MaskRCNN.detect`` per (canvas, batch bucket), and mapped back to each original
image's pixels.  Batches are padded up to a power of two (at most ``batch_size``), so a new set of
images, of any sizes and count, reuses the compiled function.

CLI:
    python -m mrcnn_jax.predict --workdir W --images a.jpg b.png --out DIR [--score_threshold 0.05]
writes DIR/<name>.png (masks, boxes, class names and scores drawn on the image; <name>-2, -3, ...
when inputs share a name; a JPEG scaled to MAX_PICTURE_SIDE for larger images) and
DIR/detections.json (COCO-style results: bbox [x, y, w, h], score, category_id, RLE segmentation,
file_name as given, picture). Score threshold 0.05 by default, in the CLI as in ``predict``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mrcnn_jax import errors, ops
from mrcnn_jax.data.preprocess import preprocess

SCORE_THRESHOLD = 0.05   # the default of predict and its CLI (Detectron2's inference threshold)
MAX_PICTURE_SIDE = 2048  # larger pictures are scaled down to this and saved as JPEG


@dataclasses.dataclass
class Detections:
  """Detections in original image pixels; rows past ``num_detections[b]`` are padding.

  boxes [B,D,4] float32 (x1, y1, x2, y2); scores [B,D]; classes [B,D] int32 (1..K, 0 = padding);
  masks: [B,D,H,W] bool when all images share one size, else a list of B arrays [D,H_b,W_b];
  num_detections [B] int32; class_names: the K names (classes index them from 1).
  """
  boxes: np.ndarray
  scores: np.ndarray
  classes: np.ndarray
  masks: np.ndarray | list
  num_detections: np.ndarray
  class_names: tuple = ()

  def __len__(self) -> int:
    return len(self.boxes)

  def image(self, b: int) -> dict:
    """Image ``b``'s detections without padding: boxes [n,4], scores, classes, masks [n,H,W], names."""
    n = int(self.num_detections[b])
    classes = self.classes[b, :n]
    names = [self.class_names[c - 1] if 0 < c <= len(self.class_names) else str(c) for c in classes]
    return {"boxes": self.boxes[b, :n], "scores": self.scores[b, :n], "classes": classes,
            "masks": self.masks[b][:n], "names": names}


def as_rgb_images(images) -> list[np.ndarray]:
  """One HxW(x1|3|4) uint8 image, a [B,H,W,C] batch or a list -> list of HxWx3 uint8 arrays."""
  if not isinstance(images, (list, tuple)):
    array = np.asarray(images)
    images = list(array) if array.ndim == 4 else [array]
  if not images:
    raise ValueError("images must be an HxWx3 uint8 array, a [B,H,W,3] batch or a non-empty list of images")
  out = []
  for i, image in enumerate(images):
    image = np.asarray(image)
    if image.dtype != np.uint8:
      raise ValueError(f"images[{i}] must be uint8 (0..255), got dtype {image.dtype}")
    if image.ndim == 2:
      image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4) or min(image.shape[:2]) < 1:
      raise ValueError(f"images[{i}] must be HxW, HxWx1, HxWx3 or HxWx4, got shape {image.shape}")
    if image.shape[-1] == 1:
      image = np.repeat(image, 3, axis=-1)
    out.append(np.ascontiguousarray(image[..., :3]))
  return out


@functools.partial(jax.jit, static_argnums=0)
def _detect(graphdef, state, image, image_size, score_threshold, nms_threshold):
  return nnx.merge(graphdef, state).detect(image, image_size, score_threshold, nms_threshold)


def compiled_count() -> int:
  """How many versions of the detection function have been compiled so far (for tests and logs)."""
  return _detect._cache_size()


def detect_canvas(model, image, image_size, score_threshold=None, nms_threshold=None) -> dict:
  """``model.detect`` on canvas batches, jitted once per (model structure, shapes); numpy out."""
  if isinstance(model, nnx.Module):
    roi = model.config.model.roi
    graphdef, state = nnx.split(model)
    out = _detect(graphdef, state, image, image_size,
                  np.float32(roi.score_threshold if score_threshold is None else score_threshold),
                  np.float32(roi.nms_threshold if nms_threshold is None else nms_threshold))
  else:  # any object with the same ``detect`` (e.g. a test double)
    out = model.detect(image, image_size)
  return jax.device_get(out)


_paste = jax.jit(ops.paste_masks, static_argnames=("height", "width"))


def _round_up(n: int, step: int = 64) -> int:
  return -(-int(n) // step) * step


def to_original(boxes, masks, scale, original_size):
  """Canvas detections of one image -> original pixels.

  boxes [D,4] canvas pixels, masks [D,M,M] probabilities or None, scale (canvas / original),
  original_size (H, W) -> boxes [D,4] clipped to the image, masks [D,H,W] bool (pasted at pixel
  centres, > 0.5; pasted on a canvas rounded up to 64 px so few sizes get compiled, then cropped).
  """
  height, width = (int(v) for v in original_size)
  boxes = np.clip(np.asarray(boxes, np.float32) / np.float32(scale), 0, [width, height, width, height])
  if masks is None:
    return boxes, None
  pasted = _paste(np.asarray(masks, np.float32), boxes, height=_round_up(height), width=_round_up(width))
  return boxes, np.asarray(pasted)[:, :height, :width]


def _bucket(n: int, batch_size: int) -> int:
  return min(batch_size, 1 << (n - 1).bit_length())


def predict(model, images, *, score_threshold: float = SCORE_THRESHOLD, nms_threshold: float | None = None,
            max_detections: int | None = None, batch_size: int = 8) -> Detections:
  """Detects objects in one image or several (see ``as_rgb_images``); returns ``Detections``.

  score_threshold: keep (box, class) pairs with a higher probability; nms_threshold: per-class NMS IoU
  (default: the config's); max_detections: at most this many per image (default and upper bound:
  ``config.model.roi.detections_per_image``).
  """
  config = model.config
  limit = config.model.roi.detections_per_image
  max_detections = limit if max_detections is None else max_detections
  if not 0 < max_detections <= limit:
    raise ValueError(f"max_detections must be in 1..{limit} (config.model.roi.detections_per_image), "
                     f"got {max_detections}")
  if not 0.0 <= score_threshold < 1.0:
    raise ValueError(f"score_threshold must be in [0, 1), got {score_threshold}")
  nms_threshold = config.model.roi.nms_threshold if nms_threshold is None else nms_threshold
  if not 0.0 < nms_threshold <= 1.0:
    raise ValueError(f"nms_threshold must be in (0, 1], got {nms_threshold}")

  images = as_rgb_images(images)
  d = config.data
  examples = [preprocess({"image": im, "image_id": i, "boxes": np.zeros((0, 4)), "classes": [], "crowd": [],
                          "masks": None}, canvas=d.canvas, min_size=d.min_size, max_size=d.max_size,
                         max_instances=1, mask_size=1) for i, im in enumerate(images)]
  outputs = []
  for start in range(0, len(examples), batch_size):
    chunk = examples[start:start + batch_size]
    padded = chunk + [chunk[-1]] * (_bucket(len(chunk), batch_size) - len(chunk))
    result = detect_canvas(model, np.stack([e["image"] for e in padded]),
                           np.stack([e["image_size"] for e in padded]), score_threshold, nms_threshold)
    outputs.append({k: v[:len(chunk)] for k, v in result.items()})
  det = {k: np.concatenate([o[k] for o in outputs])[:, :max_detections] for k in outputs[0]}

  boxes, masks = [], []
  for b, example in enumerate(examples):
    box, mask = to_original(det["boxes"][b], det["masks"][b], example["scale"], example["original_size"])
    boxes.append(box)
    masks.append(mask & det["valid"][b][:, None, None])
  same_size = len({m.shape for m in masks}) == 1
  return Detections(
      boxes=np.stack(boxes) * det["valid"][..., None], scores=np.where(det["valid"], det["scores"], 0.0),
      classes=np.where(det["valid"], det["classes"], 0).astype(np.int32),
      masks=np.stack(masks) if same_size else masks, num_detections=det["valid"].sum(1).astype(np.int32),
      class_names=tuple(config.class_names))


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
  parser = argparse.ArgumentParser(prog="python -m mrcnn_jax.predict",
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
  from mrcnn_jax.evaluate import detections_to_coco  # pylint: disable=import-outside-toplevel
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
  detections = predict(model, images, score_threshold=args.score_threshold,
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
  raise SystemExit(main())
