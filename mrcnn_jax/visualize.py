"""Drawing detections on images: translucent masks, box outlines, class names and scores, keypoints and
their skeletons."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw


def class_colour(class_id: int) -> tuple[int, int, int]:
  """A distinct, stable colour per class (golden-ratio hues)."""
  r, g, b = colorsys.hsv_to_rgb((class_id * 0.618034) % 1.0, 0.85, 1.0)
  return int(r * 255), int(g * 255), int(b * 255)


KEYPOINT_THRESHOLD = 0.05  # keypoints scoring at most this are not drawn (Detectron2's Visualizer's)


def draw_detections(image: np.ndarray, detections: dict, alpha: float = 0.45, skeleton=()) -> Image.Image:
  """image [H,W,3] uint8; detections: boxes [n,4], scores [n], classes [n], masks [n,H,W] (or None),
  names [n], optionally keypoints [n,K,3] (or None) drawn as dots joined by ``skeleton``'s (i, j) pairs."""
  canvas = image.astype(np.float32)
  for cls, mask in zip(detections["classes"], detections["masks"] if detections["masks"] is not None else ()):
    canvas[mask] = (1 - alpha) * canvas[mask] + alpha * np.asarray(class_colour(int(cls)), np.float32)
  picture = Image.fromarray(canvas.round().astype(np.uint8))
  draw = ImageDraw.Draw(picture)
  if detections.get("keypoints") is not None:
    draw_keypoints(draw, detections["keypoints"], skeleton, radius=1 if min(image.shape[:2]) < 256 else 3)
  for box, score, cls, name in zip(detections["boxes"], detections["scores"], detections["classes"],
                                   detections["names"]):
    colour = class_colour(int(cls))
    x1, y1, x2, y2 = (float(v) for v in box)
    draw.rectangle((x1, y1, x2, y2), outline=colour, width=1 if min(image.shape[:2]) < 256 else 2)
    label = f"{name} {score:.2f}"
    left, top, right, bottom = draw.textbbox((x1, y1), label)
    ty = y1 - (bottom - top) - 2 if y1 >= bottom - top + 2 else y1
    draw.rectangle((x1, ty, x1 + right - left + 2, ty + bottom - top + 2), fill=colour)
    draw.text((x1 + 1, ty), label, fill=(0, 0, 0))
  return picture


def draw_keypoints(draw: ImageDraw.ImageDraw, keypoints: np.ndarray, skeleton, radius: int = 3):
  """keypoints [n,K,3] (x, y, score): a dot per keypoint scoring above KEYPOINT_THRESHOLD (colour by
  keypoint index) and a line for each skeleton pair (i, j) of such keypoints."""
  for person in keypoints:
    shown = person[:, 2] > KEYPOINT_THRESHOLD
    for i, j in skeleton:
      if shown[i] and shown[j]:
        draw.line([tuple(map(float, person[i, :2])), tuple(map(float, person[j, :2]))],
                  fill=class_colour(i + 7 * j), width=max(radius - 1, 1))
    for k, (x, y, _) in enumerate(person):
      if shown[k]:
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=class_colour(k), outline=(0, 0, 0))


def side_by_side(pictures: list[Image.Image], columns: int = 4) -> Image.Image:
  """Tiles pictures (same size) into a grid."""
  w, h = pictures[0].size
  rows = -(-len(pictures) // columns)
  grid = Image.new("RGB", (w * min(columns, len(pictures)), h * rows), (255, 255, 255))
  for i, p in enumerate(pictures):
    grid.paste(p, ((i % columns) * w, (i // columns) * h))
  return grid
