"""Post-processing: detections on the model's canvas -> the original image's pixels.

Boxes are scaled by the original size over the resized size, per axis (Detectron2's
``detector_postprocess``), and clipped to the image; the M x M mask probabilities are pasted at the
original resolution (``ops.paste_masks``: bilinear at pixel centres, >= 0.5). ``inference`` and
``evaluate`` both map detections back with ``to_original``; keypoints are scaled alike, not clipped
(``keypoints_to_original``).
"""

from __future__ import annotations

import jax
import numpy as np

from mrcnn_jax import ops

_paste = jax.jit(ops.paste_masks, static_argnames=("height", "width", "border"))


def _round_up(n: int, step: int = 64) -> int:
  return -(-int(n) // step) * step


def _scale_xy(image_size, original_size) -> np.ndarray:
  """(x, y) original pixels per resized pixel, float32."""
  return np.asarray([int(original_size[1]) / int(image_size[1]), int(original_size[0]) / int(image_size[0])],
                    np.float32)


def keypoints_to_original(keypoints, image_size, original_size) -> np.ndarray:
  """Canvas keypoints [D,K,3] (x, y, score) of one image -> x, y in original pixels (not clipped, as
  Detectron2's), score unchanged."""
  keypoints = np.array(keypoints, np.float32)
  keypoints[..., :2] *= _scale_xy(image_size, original_size)
  return keypoints


def to_original(boxes, masks, image_size, original_size, border="clamp"):
  """Canvas detections of one image -> original pixels.

  boxes [D,4] canvas pixels, masks [D,M,M] probabilities or None, image_size (h, w) of the resized
  image on the canvas, original_size (H, W) -> boxes [D,4] clipped to the image, masks [D,H,W] bool (pasted at pixel
  centres, >= 0.5, ``border`` as ``ops.paste_masks``'s: ``config.model.mask.paste_border``; pasted on a canvas rounded up to 64 px so few sizes get compiled, then cropped).
  """
  height, width = (int(v) for v in original_size)
  boxes = np.asarray(boxes, np.float32) * np.tile(_scale_xy(image_size, original_size), 2)
  boxes = np.clip(boxes, 0, [width, height, width, height])
  if masks is None:
    return boxes, None
  pasted = _paste(np.asarray(masks, np.float32), boxes, height=_round_up(height), width=_round_up(width),
                  border=border)
  return boxes, np.asarray(pasted)[:, :height, :width]
