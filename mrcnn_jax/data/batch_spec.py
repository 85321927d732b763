"""The batch: the one definition of what the input pipeline yields and the model consumes.

A batch is a dict of numpy (or jax) arrays with static shapes. B images per batch, each placed at the
top-left of a zero canvas of Hc x Wc pixels (one canvas per batch: ``canvas.py``), with its ground truth padded to
G = ``config.data.max_instances`` instances; GT masks are stored cropped to their box at Mg x Mg
(``config.data.gt_mask_size``). Padding is marked, never dropped:

  image          [B,Hc,Wc,3] uint8  resized image, zeros outside image_size
  image_size     [B,2]     int32    (h, w) of the image content on the canvas
  scale          [B]       float32  canvas pixels per original pixel
  original_size  [B,2]     int32    (h, w) of the original image
  image_id       [B]       int64    dataset image id; -1 marks a padding example (evaluation tail)
  gt_boxes       [B,G,4]   float32  (x1, y1, x2, y2) in canvas pixels; zeros in padded slots
  gt_classes     [B,G]     int32    1..K (0 = padding; the model's class 0 is background)
  gt_masks       [B,G,Mg,Mg] uint8  {0,1}, the instance mask inside its box (``preprocess.crop_mask``)
  gt_valid       [B,G]     bool     the slot holds a real instance (crowd regions included)
  gt_crowd       [B,G]     bool     crowd region: ignored in matching, never a training target
  gt_keypoints   [B,G,K,3] float32  only with K = ``config.model.keypoint.num_keypoints`` > 0: x, y in
                                    canvas pixels (continuous: a pixel's centre is at +0.5) and v (0: not
                                    labelled, 1: labelled but invisible, 2: visible); zeros when padded

``MaskRCNN.losses`` reads every field (``gt_masks`` only with ``config.model.mask_on``) but ``scale``,
``original_size`` and ``image_id``; ``MaskRCNN.detect`` reads ``image`` and ``image_size``. ``scale`` and
``original_size`` map detections back to original pixels (``mrcnn_jax.postprocess``).
"""

import numpy as np


def field_specs(canvas: tuple[int, int], max_instances: int, mask_size: int,
                num_keypoints: int = 0) -> dict[str, tuple[tuple[int, ...], type]]:
  """Per-example (no batch dim) shape and numpy dtype of every field on a (h, w) canvas."""
  g = max_instances
  keypoints = {"gt_keypoints": ((g, num_keypoints, 3), np.float32)} if num_keypoints else {}
  return {
      "image": ((*canvas, 3), np.uint8),
      "image_size": ((2,), np.int32),
      "scale": ((), np.float32),
      "original_size": ((2,), np.int32),
      "image_id": ((), np.int64),
      "gt_boxes": ((g, 4), np.float32),
      "gt_classes": ((g,), np.int32),
      "gt_masks": ((g, mask_size, mask_size), np.uint8),
      "gt_valid": ((g,), bool),
      "gt_crowd": ((g,), bool),
      **keypoints,
  }


def blank_example(canvas: tuple[int, int], max_instances: int, mask_size: int, num_keypoints: int = 0) -> dict:
  """An all-padding example: a zero image filling the (h, w) canvas, no instances, image_id -1."""
  example = {name: np.zeros(shape, dtype) for name, (shape, dtype) in
             field_specs(canvas, max_instances, mask_size, num_keypoints).items()}
  example["image_size"][:] = example["original_size"][:] = canvas
  example["scale"], example["image_id"] = np.float32(1.0), np.int64(-1)
  return example


def check_batch(batch: dict, config) -> None:
  """Raises ValueError naming the first field whose shape or dtype disagrees with the spec (on the
  batch's own canvas: any (h, w), each a multiple of 32)."""
  d = config.data
  image = batch.get("image")
  canvas = tuple(image.shape[1:3]) if image is not None and image.ndim == 4 else (d.canvas, d.canvas)
  specs = field_specs(canvas, d.max_instances, d.gt_mask_size, config.model.keypoint.num_keypoints)
  for name, (shape, dtype) in specs.items():
    if name not in batch:
      raise ValueError(f"batch is missing field {name!r} (see mrcnn_jax.data.batch_spec)")
    value = batch[name]
    if tuple(value.shape[1:]) != shape or np.dtype(value.dtype) != np.dtype(dtype):
      raise ValueError(f"batch[{name!r}] must be [B,{','.join(map(str, shape))}] {np.dtype(dtype).name}, "
                       f"got {list(value.shape)} {np.dtype(value.dtype).name} (see mrcnn_jax.data.batch_spec)")
