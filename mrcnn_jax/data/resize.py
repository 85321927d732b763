"""Resize an image onto the model's square canvas (numpy + PIL only: inference imports this alone).

The short side goes to ``min_size`` unless the long side would exceed ``max_size`` (aspect kept, as
Detectron2's ResizeShortestEdge); the image sits at the canvas's top-left, zeros elsewhere.
"""

import numpy as np
from PIL import Image


def resize_scale(height: int, width: int, min_size: int, max_size: int) -> float:
  """Scale taking the short side to min_size unless that makes the long side exceed max_size."""
  return min(min_size / min(height, width), max_size / max(height, width))


def resized_size(height: int, width: int, scale: float, canvas: int) -> tuple[int, int]:
  """(h, w) after scaling, at least 1 and at most the canvas."""
  return (min(max(int(round(height * scale)), 1), canvas), min(max(int(round(width * scale)), 1), canvas))


def resize_image(image: np.ndarray, min_size: int, max_size: int, canvas: int) -> tuple[np.ndarray, float]:
  """image [H,W,3] uint8 -> (resized [h,w,3] uint8, scale)."""
  height, width = image.shape[:2]
  scale = resize_scale(height, width, min_size, max_size)
  new_h, new_w = resized_size(height, width, scale, canvas)
  if (new_h, new_w) != (height, width):
    image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
  return image, scale


def resize_and_pad(image: np.ndarray, *, canvas: int, min_size: int, max_size: int) -> dict:
  """image [H,W,3] uint8 -> the batch_spec fields image [C,C,3], image_size, scale, original_size."""
  resized, scale = resize_image(image, min_size, max_size, canvas)
  padded = np.zeros((canvas, canvas, 3), np.uint8)
  padded[:resized.shape[0], :resized.shape[1]] = resized
  return {"image": padded, "image_size": np.asarray(resized.shape[:2], np.int32), "scale": np.float32(scale),
          "original_size": np.asarray(image.shape[:2], np.int32)}
