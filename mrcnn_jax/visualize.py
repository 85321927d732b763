"""Drawing detections on images: translucent masks, box outlines, class names and scores, keypoints
joined by their skeleton."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw


def class_colour(class_id: int) -> tuple[int, int, int]:
  """A distinct, stable colour per class (golden-ratio hues)."""
  r, g, b = colorsys.hsv_to_rgb((class_id * 0.618034) % 1.0, 0.85, 1.0)
  return int(r * 255), int(g * 255), int(b * 255)


def draw_detections(image: np.ndarray, detections: dict, alpha: float = 0.45, skeleton=()) -> Image.Image:
  """image [H,W,3] uint8; detections: boxes [n,4], scores [n], classes [n], masks [n,H,W] (or None),
  names [n], and optionally keypoints [n,K,3] (x, y, score), drawn as dots joined by the (i, j) pairs
  of ``skeleton``."""
  canvas = image.astype(np.float32)
  for cls, mask in zip(detections["classes"], detections["masks"] if detections["masks"] is not None else []):
    canvas[mask] = (1 - alpha) * canvas[mask] + alpha * np.asarray(class_colour(int(cls)), np.float32)
  picture = Image.fromarray(canvas.round().astype(np.uint8))
  draw = ImageDraw.Draw(picture)
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
  for points in detections.get("keypoints") if detections.get("keypoints") is not None else []:
    draw_skeleton(draw, points, skeleton, radius=1 if min(image.shape[:2]) < 256 else 2)
  return picture


def draw_skeleton(draw: ImageDraw.ImageDraw, keypoints, skeleton, radius: int = 2) -> None:
  """One instance's keypoints [K, 2+] (x, y, ...) as white dots with dark rims, the ``skeleton``'s
  (i, j) pairs as lines, each in its own colour (golden-ratio hues)."""
  xy = [(float(x), float(y)) for x, y in np.asarray(keypoints)[:, :2]]
  for n, (i, j) in enumerate(skeleton):
    draw.line([xy[i], xy[j]], fill=class_colour(n + 1), width=radius)
  for x, y in xy:
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(255, 255, 255), outline=(0, 0, 0))


def side_by_side(pictures: list[Image.Image], columns: int = 4) -> Image.Image:
  """Tiles pictures (same size) into a grid."""
  w, h = pictures[0].size
  rows = -(-len(pictures) // columns)
  grid = Image.new("RGB", (w * min(columns, len(pictures)), h * rows), (255, 255, 255))
  for i, p in enumerate(pictures):
    grid.paste(p, ((i % columns) * w, (i // columns) * h))
  return grid
