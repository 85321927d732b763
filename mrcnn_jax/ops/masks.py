"""Mask targets for training (GT mask -> RoI grid) and paste-back for inference (RoI grid -> image).

Both move a mask between a box-aligned grid and the canvas with the RoIAlign bilinear taps of
`roi_align.py` (same sample positions and border rules). A mask grid [h, w] "covers" a canvas box:
its cell (i, j) has its centre at (y1 + (i + 0.5) * box_h / h, x1 + (j + 0.5) * box_w / w).

mask_targets: a GT mask is background outside the box it covers, so the GT grids get one ring of
zero cells before sampling; a sample just outside the box then blends towards 0 as it would on a
full-canvas raster, where RoIAlign's clamp would instead repeat the border cell outward. That makes
box-cropped and full-canvas GT masks give the same targets (Detectron2 RoIAligns full-image
bitmasks, or rasterises polygons inside the box).

paste_masks, border "clamp" (default): a pixel whose centre lies inside the box samples the RoI mask
with RoIAlign's clamp (the box's edge cells extend to the box's edge) and every other pixel is 0, so
an all-ones mask fills exactly its box. Border "zeros" is Detectron2's paste
(`grid_sample(align_corners=False, padding_mode="zeros")`), which blends the border cells with 0 and
so erodes a mask by up to half a cell along the box's edges (a pixel centre outside the box then
never reaches 0.5). Border "torchvision" is torchvision's paste_masks_in_image: the M x M mask gets a
ring of zero cells, its box is scaled by (M + 2) / M about its centre and truncated to integer
pixels [x1, x2] x [y1, y2], and the padded mask is resized onto those (x2 - x1 + 1) x (y2 - y1 + 1)
pixels (bilinear, align_corners=False, source coordinates clamped at 0).
"""

import functools

import jax
import jax.numpy as jnp

from mrcnn_jax.ops._checks import check_array, check_same_leading
from mrcnn_jax.ops.roi_pooling import axis_taps, roi_regions, sample_regions


def _in_frame(boxes, frames, h, w, pad):
  """Boxes [R, 4] in canvas pixels -> the same boxes in the continuous (edge) coordinates of grids
  [h, w] covering frames [R, 4] (canvas boxes), each grid having `pad` extra cells on every side."""
  cell = jnp.maximum((frames[:, 2:] - frames[:, :2]) / jnp.array([w, h], jnp.float32), 1e-6)
  cell = jnp.tile(cell, 2)
  return (boxes - jnp.tile(frames[:, :2], 2)) / cell + pad


@functools.partial(jax.jit, static_argnames=("size",))
def mask_targets(masks, mask_boxes, rois, matched_gt, size=28):
  """Each RoI's matched GT mask, RoIAligned onto size x size bins and thresholded at 0.5.

  Args:
    masks: [G, h, w] GT masks in {0, 1} (any real or integer dtype).
    mask_boxes: [G, 4] canvas box each mask grid covers (the GT box for box-cropped masks,
      (0, 0, W, H) for full-canvas ones).
    rois: [R, 4] canvas boxes. matched_gt: [R] int index into G (clipped into range; callers weight
      out RoIs that match nothing).
    size: static output side.
  Returns:
    [R, size, size] float32 in {0, 1}; RoIAlign aligned=True, sampling_ratio 2, no gradient.
  """
  masks = check_array("masks", masks, ndim=3)
  mask_boxes = check_array("mask_boxes", mask_boxes, ndim=2, last_dim=4, kind="float")
  rois = check_array("rois", rois, ndim=2, last_dim=4, kind="float")
  matched_gt = check_array("matched_gt", matched_gt, ndim=1, kind="int")
  check_same_leading(("masks", "mask_boxes"), masks, mask_boxes)
  check_same_leading(("rois", "matched_gt"), rois, matched_gt)
  if not isinstance(size, int) or size < 1:
    raise ValueError(f"size must be a positive int, got {size!r}")
  g, h, w = masks.shape
  cells = (h + 2) * (w + 2)
  gt = jnp.clip(matched_gt, 0, g - 1)
  frame_rois = _in_frame(rois.astype(jnp.float32), mask_boxes.astype(jnp.float32)[gt], h, w, 1.0)
  start, extent = roi_regions(frame_rois, 1.0, "roi_align", aligned=True)
  padded = jnp.pad(masks.astype(jnp.float32), ((0, 0), (1, 1), (1, 1)))
  grid = jax.lax.stop_gradient(padded).reshape(g * cells, 1)
  shapes = jnp.broadcast_to(jnp.array([h + 2, w + 2], jnp.int32), (rois.shape[0], 2))
  sampled = sample_regions(grid, gt * cells, shapes, start, extent, (size, size), 2)
  return (sampled[..., 0] >= 0.5).astype(jnp.float32)


def _tap_matrix(idx, weight, length):
  """Taps idx, weight [R, N, 2] -> dense interpolation matrix [R, N, length]."""
  return jnp.sum(jax.nn.one_hot(idx, length, dtype=jnp.float32) * weight[..., None], axis=-2)


def _zero_padded_taps(lo, hi, length, cells):
  """Bilinear taps [R, length, cells] of pixel centres on grids of ``cells`` covering [lo, hi] [R]
  (grid_sample, align_corners=False): taps that fall off the grid weigh 0."""
  g = (jnp.arange(length, dtype=jnp.float32) + 0.5 - lo[:, None]) / jnp.maximum(hi - lo, 1e-6)[:, None]
  g = g * cells - 0.5
  first = jnp.floor(g)
  frac = (g - first)[..., None]
  first = first.astype(jnp.int32)
  return jax.nn.one_hot(first, cells) * (1 - frac) + jax.nn.one_hot(first + 1, cells) * frac


def _resize_taps(lo, hi, length, cells):
  """Bilinear taps [R, length, cells] of torchvision's paste along one axis of a box [lo, hi] [R]: the
  grid, one zero cell wider on each side, resized onto the integer pixels of the box scaled by
  (cells + 2) / cells (PyTorch's interpolate, align_corners=False); pixels outside weigh 0."""
  padded = cells + 2
  half, centre = (hi - lo) * 0.5 * jnp.float32(padded / cells), (hi + lo) * 0.5
  first, last = jnp.trunc(centre - half), jnp.trunc(centre + half)   # PyTorch's cast to int64
  size = jnp.maximum(last - first + 1, 1)[:, None]
  pixel = jnp.arange(length, dtype=jnp.float32) - first[:, None]       # [R, length] in the resized box
  src = jnp.maximum((pixel + 0.5) * (padded / size) - 0.5, 0.0)
  low = jnp.floor(src)
  frac = (src - low)[..., None]
  low = low.astype(jnp.int32)
  taps = jax.nn.one_hot(low, padded) * (1 - frac) + jax.nn.one_hot(jnp.minimum(low + 1, padded - 1), padded) * frac
  inside = (pixel >= 0) & (pixel < size)
  return jnp.where(inside[..., None], taps, 0.0)[..., 1:-1]               # the zero ring adds nothing


@functools.partial(jax.jit, static_argnames=("height", "width", "threshold", "border"))
def paste_masks(masks, boxes, height, width, threshold=0.5, border="clamp"):
  """Pastes RoI masks into a height x width image.

  border "clamp": a pixel whose centre (x + 0.5, y + 0.5) lies inside its box gets the bilinear
  sample of the box's M x M' mask at that canvas point (clamped at the mask's edge cells); pixels
  outside are False. border "zeros": Detectron2's, the bilinear sample with 0 beyond the mask's cells.
  border "torchvision": torchvision's resize of the zero-padded mask onto the expanded integer box.
  The resampling is separable, probs = A_y @ mask @ A_x^T with A_y [H, M] and A_x [W, M'] built
  from bilinear taps (one sample per pixel): two small matmuls per RoI, no gathers.

  Args:
    masks: [R, M, M'] probabilities. boxes: [R, 4] canvas pixels. height, width: static ints (or
      symbolic dimensions under ``jax.export``).
  Returns:
    [R, height, width] bool = (prob >= threshold) (& inside box for "clamp"). Cost O(R * H * W * M)
    flops and R * H * W floats of memory: chunk the RoIs or crop the image when that is too much.
  """
  masks = check_array("masks", masks, ndim=3, kind="float")
  boxes = check_array("boxes", boxes, ndim=2, last_dim=4, kind="float")
  check_same_leading(("masks", "boxes"), masks, boxes)
  if not all(jax.export.is_symbolic_dim(s) or (isinstance(s, int) and s > 0) for s in (height, width)):
    raise ValueError(f"height and width must be positive ints or symbolic dimensions, got {height!r}, "
                     f"{width!r}")
  if border not in ("clamp", "zeros", "torchvision"):
    raise ValueError(f"border must be 'clamp', 'zeros' or 'torchvision', got {border!r}")
  r, mh, mw = masks.shape
  boxes = boxes.astype(jnp.float32)
  if border != "clamp":
    taps = _zero_padded_taps if border == "zeros" else _resize_taps
    a_y = taps(boxes[:, 1], boxes[:, 3], height, mh)
    a_x = taps(boxes[:, 0], boxes[:, 2], width, mw)
    probs = jnp.einsum("ryi,rij,rxj->ryx", a_y, masks.astype(jnp.float32), a_x,
                       precision=jax.lax.Precision.HIGHEST)
    return probs >= threshold
  # The whole image as a region of each mask's grid: its pixel centres become the samples.
  image = jnp.broadcast_to(jnp.array([0.0, 0.0, width, height], jnp.float32), (r, 4))
  start, extent = roi_regions(_in_frame(image, boxes, mh, mw, 0.0), 1.0, "roi_align", aligned=True)
  a_y = _tap_matrix(*axis_taps(start[:, 0], extent[:, 0], height, 1, mh), mh)
  a_x = _tap_matrix(*axis_taps(start[:, 1], extent[:, 1], width, 1, mw), mw)
  probs = jnp.einsum("ryi,rij,rxj->ryx", a_y, masks.astype(jnp.float32), a_x,
                     precision=jax.lax.Precision.HIGHEST)
  centre_y = jnp.arange(height, dtype=jnp.float32) + 0.5
  centre_x = jnp.arange(width, dtype=jnp.float32) + 0.5
  in_y = (centre_y >= boxes[:, 1:2]) & (centre_y <= boxes[:, 3:4])
  in_x = (centre_x >= boxes[:, 0:1]) & (centre_x <= boxes[:, 2:3])
  return (probs >= threshold) & in_y[:, :, None] & in_x[:, None, :]
