"""Resize an image and place it on its canvas (numpy + PIL only: inference imports this alone).

``config.data.resize`` "pil": the short side goes to ``min_size`` unless the long side would exceed
``max_size`` (aspect kept), each side rounded with ``int(x + 0.5)``: Detectron2's ``ResizeShortestEdge``,
and PIL's bilinear resampling of the uint8 image as its ``ResizeTransform``. The image sits at the
canvas's top-left, zeros elsewhere (``MaskRCNN`` turns them into ``config.model.padding``). The canvas
comes from ``data.canvas``. "torchvision": the resize runs in the model's graph on the normalised float
image (``ops.resize``); here only the sizes are computed and the original placed on a source canvas.
"""

import numpy as np
from PIL import Image

from mrcnn_jax.data import canvas as canvas_lib


def resize_scale(height: int, width: int, min_size: int, max_size: int) -> float:
  """Scale taking the short side to min_size unless that makes the long side exceed max_size."""
  return min(min_size / min(height, width), max_size / max(height, width))


def resized_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
  """(h, w) after resizing, each at least 1, in Detectron2's arithmetic (``get_output_shape``)."""
  scale = min_size / min(height, width)
  new_h, new_w = (min_size, scale * width) if height < width else (scale * height, min_size)
  if max(new_h, new_w) > max_size:
    shrink = max_size / max(new_h, new_w)
    new_h, new_w = new_h * shrink, new_w * shrink
  return max(int(new_h + 0.5), 1), max(int(new_w + 0.5), 1)


def torchvision_resized_size(h: int, w: int, min_size: int, max_size: int) -> tuple[int, int]:
  """(h', w') that torchvision's eager transform resizes an h x w image to: floor(side * scale), float64.

  The product is truncated, so a side can land one pixel short: 385 * (800 / 385) = 799.99... -> 799.
  (Scripted or traced models compute the scale in float32 instead and often get 799 for 800.)
  """
  scale = resize_scale(h, w, min_size, max_size)
  return int(h * scale), int(w * scale)


def resize_image(image: np.ndarray, min_size: int, max_size: int) -> tuple[np.ndarray, float]:
  """image [H,W,3] uint8 -> (resized [h,w,3] uint8, scale)."""
  height, width = image.shape[:2]
  new_h, new_w = resized_size(height, width, min_size, max_size)
  if (new_h, new_w) != (height, width):
    image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
  return image, resize_scale(height, width, min_size, max_size)


def place(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """image [h,w,3] uint8 at the top-left of a zero canvas [H,W,3] (shape (H, W) holds it)."""
  out = np.zeros((*shape, 3), np.uint8)
  out[:image.shape[0], :image.shape[1]] = image
  return out


def resize_and_pad(image: np.ndarray, data) -> dict:
  """image [H,W,3] uint8 -> the batch_spec fields image [Hc,Wc,3], image_size, scale, original_size,
  on the inference canvas that ``config.data`` (``data``) gives its resized size, and ``canvas`` (Hc, Wc).

  ``data.resize`` "torchvision": ``image`` is the original instead, on a source canvas of its size
  rounded up to 32, for the model to resize onto ``canvas`` (``inference.predict``)."""
  height, width = image.shape[:2]
  if data.resize == "torchvision":
    size = torchvision_resized_size(height, width, data.min_size, data.max_size)
    resized, source = None, place(image, (-(-height // 32) * 32, -(-width // 32) * 32))
  else:
    resized, _ = resize_image(image, data.min_size, data.max_size)
    size = resized.shape[:2]
  shape = canvas_lib.inference_canvas(*size, data)
  return {"image": place(resized, shape) if resized is not None else source,
          "image_size": np.asarray(size, np.int32), "canvas": shape,
          "scale": np.float32(resize_scale(height, width, data.min_size, data.max_size)),
          "original_size": np.asarray(image.shape[:2], np.int32)}
