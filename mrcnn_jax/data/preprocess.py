"""Per-example preprocessing to static shapes (numpy + PIL, runs in grain workers, no TensorFlow).

A *record* is one decoded dataset example in original pixels:
  image [H, W, 3] uint8, image_id int, boxes [N, 4] float32 (x1, y1, x2, y2), classes [N] int32 in 1..K,
  crowd [N] bool, area [N] float32, masks: list of N compressed-RLE counts at H x W, or None when the
  dataset has no masks (TFDS coco/2017): those instances get an all-ones mask (their whole box);
  keypoints [N, K, 3] in original pixels (``keypoints.py``), or None for a dataset without them.
`preprocess` resizes (``resize.py``: short side -> min_size, long side <= max_size, aspect kept;
keypoints per axis, those outside the image unlabelled), optionally flips horizontally (image, boxes,
masks and keypoints together, swapping the keypoints of each ``flip_map`` pair), puts the image at the top-left of a
zero canvas (the smallest of the fixed canvases that holds it: ``canvas.py``), and pads instances to max_instances: one example of the batch (``batch_spec.py``). Each GT mask is stored cropped to its box and resampled to Mg x Mg
(bilinear at the Mg x Mg cell centres, thresholded at 0.5), so the per-example mask state is
G * Mg * Mg bytes whatever the canvas: 100 instances at Mg = 64 take 100 * 64 * 64 = 409,600 bytes
even on a 1024 (or 1344) canvas, where full-canvas masks would take 100 * 1024 * 1024 = 105 MB.
Instances beyond max_instances are dropped (crowd ones first); boxes empty after resizing are dropped.
"""

import math

import numpy as np
from PIL import Image

from mrcnn_jax.data import batch_spec, features, keypoints, resize
from mrcnn_jax.data import canvas as canvas_lib


def crop_mask(mask: np.ndarray, box, size: int) -> np.ndarray:
  """[size, size] uint8 in {0,1}: `mask` [H, W] resampled on a size x size grid covering `box`.

  Cell (i, j) samples the mask (bilinear, pixel centres at +0.5, antialiased when shrinking) at
  (box.x1 + (j + 0.5) * box_w / size, box.y1 + (i + 0.5) * box_h / size), i.e. the cell centres that
  RoIAlign with aligned=True uses, so ops.mask_targets(..., mask_boxes=gt_boxes) reads it back in place.
  `box` is clipped to the mask (boxes from the datasets are inside their image).
  """
  height, width = mask.shape
  x1, y1, x2, y2 = (float(v) for v in np.clip(box, 0, [width, height, width, height]))
  margin = int(math.ceil(max(x2 - x1, y2 - y1) / size)) + 1  # the filter's reach when shrinking
  ix1, iy1 = max(int(math.floor(x1)) - margin, 0), max(int(math.floor(y1)) - margin, 0)
  ix2, iy2 = min(int(math.ceil(x2)) + margin, width), min(int(math.ceil(y2)) + margin, height)
  window = Image.fromarray((mask[iy1:iy2, ix1:ix2] * 255).astype(np.uint8))
  out = window.resize((size, size), Image.BILINEAR, box=(x1 - ix1, y1 - iy1, x2 - ix1, y2 - iy1))
  return (np.asarray(out) >= 128).astype(np.uint8)


def preprocess(record: dict, *, canvases, min_size: int, max_size: int, max_instances: int,
               mask_size: int, flip: bool = False, num_keypoints: int = 0, flip_map=()) -> dict:
  """One record -> one example of the batch (``batch_spec``), without the batch dim, on the smallest
  of ``canvases`` ((h, w) pairs) that holds the resized image; with gt_keypoints when
  ``num_keypoints`` > 0 (the record's keypoints, ``flip_map``: the (i, j) pairs a flip swaps)."""
  height, width = record["image"].shape[:2]
  image, scale = resize.resize_image(record["image"], min_size, max_size)
  new_h, new_w = image.shape[:2]
  canvas = canvas_lib.fixed_canvas(new_h, new_w, canvases)

  boxes = np.asarray(record["boxes"], np.float32).reshape(-1, 4)
  canvas_boxes = np.clip(boxes * scale, 0, [new_w, new_h, new_w, new_h]).astype(np.float32)
  nonempty = (canvas_boxes[:, 2] > canvas_boxes[:, 0]) & (canvas_boxes[:, 3] > canvas_boxes[:, 1])
  crowd = np.asarray(record["crowd"], bool).reshape(-1)
  order = [i for i in np.argsort(crowd, kind="stable") if nonempty[i]][:max_instances]

  out = batch_spec.blank_example(canvas, max_instances, mask_size, num_keypoints)
  for slot, i in enumerate(order):
    if record["masks"] is None:
      out["gt_masks"][slot] = 1
    else:
      full = features.decode_mask(record["masks"][i], height, width)
      out["gt_masks"][slot] = crop_mask(full, boxes[i], mask_size)
  n = len(order)
  out["gt_boxes"][:n] = canvas_boxes[order]
  out["gt_classes"][:n] = np.asarray(record["classes"], np.int32).reshape(-1)[order]
  out["gt_crowd"][:n] = crowd[order]
  out["gt_valid"][:n] = True
  if num_keypoints:
    # [N, K, 3]; an image without instances may come as [0] from the dataset
    found = np.reshape(record["keypoints"], (-1, num_keypoints, 3))
    out["gt_keypoints"][:n] = keypoints.resize(found, (height, width), new_h, new_w)[order]

  if flip:
    image = image[:, ::-1]
    x1 = out["gt_boxes"][:n, 0].copy()
    out["gt_boxes"][:n, 0] = new_w - out["gt_boxes"][:n, 2]
    out["gt_boxes"][:n, 2] = new_w - x1
    out["gt_masks"] = out["gt_masks"][:, :, ::-1].copy()
    if num_keypoints:
      out["gt_keypoints"] = keypoints.hflip(out["gt_keypoints"], new_w, flip_map)

  out["image"][:new_h, :new_w] = image
  out["image_size"] = np.asarray([new_h, new_w], np.int32)
  out["scale"] = np.float32(scale)
  out["original_size"] = np.asarray([height, width], np.int32)
  out["image_id"] = np.int64(record["image_id"])
  return out
