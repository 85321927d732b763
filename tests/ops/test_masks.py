"""Mask targets (GT mask -> RoI 28 x 28) and paste-back (RoI mask -> image): hand cases, frame
invariance (full-canvas vs box-cropped GT) and round trips."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mrcnn_jax.ops.masks import mask_targets, paste_masks


def _ellipse(height, width, cy, cx, ry, rx):
  y, x = np.mgrid[:height, :width] + 0.5
  return (((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0).astype(np.uint8)


def test_mask_targets_hand_cases():
  # Full-canvas 8 x 8 mask with a 4 x 4 block of ones at rows/cols 2..5.
  canvas = np.zeros((8, 8), np.uint8)
  canvas[2:6, 2:6] = 1
  full = mask_targets(canvas[None], jnp.array([[0.0, 0.0, 8.0, 8.0]]),
                      jnp.array([[0.0, 0.0, 8.0, 8.0], [2.0, 2.0, 6.0, 6.0]]), jnp.array([0, 0]), 4)
  block = np.zeros((4, 4))
  block[1:3, 1:3] = 1  # 2 x 2 pixel bins: samples at pixel centres, exact
  np.testing.assert_array_equal(full[0], block)
  np.testing.assert_array_equal(full[1], np.ones((4, 4)))
  # The same object as a box-cropped 2 x 2 mask (one cell = 2 px) covering (2, 2, 6, 6). Along each
  # axis the RoI (0, 0, 8, 8) samples the zero-padded grid [0, 1, 1, 0] at -0.25, 0.25, ..., 3.25,
  # so the bins average to 1/8, 7/8, 7/8, 1/8 and the 2-D bins to products of those.
  cropped = mask_targets(np.ones((1, 2, 2), np.float32), jnp.array([[2.0, 2.0, 6.0, 6.0]]),
                         jnp.array([[0.0, 0.0, 8.0, 8.0]]), jnp.array([0]), 4)
  np.testing.assert_array_equal(cropped[0], block)


def test_mask_targets_pick_the_matched_gt():
  masks = np.stack([np.ones((4, 4)), np.zeros((4, 4)), np.eye(4)]).astype(np.float32)
  frames = jnp.array([[0.0, 0.0, 8.0, 8.0]] * 3)
  rois = jnp.array([[0.0, 0.0, 8.0, 8.0]] * 3)
  got = mask_targets(masks, frames, rois, jnp.array([2, 0, 1]), 4)
  np.testing.assert_array_equal(got[0], np.eye(4))
  np.testing.assert_array_equal(got[1], np.ones((4, 4)))
  np.testing.assert_array_equal(got[2], np.zeros((4, 4)))


def _object_and_rois(rng):
  height, width = 40, 48
  canvas = _ellipse(height, width, 17.0, 19.0, 10.0, 9.0)  # inside the box below
  box = np.array([8.0, 6.0, 30.0, 28.0], np.float32)  # pixel-aligned GT box
  xy = rng.uniform(-6.0, 30.0, (16, 2))
  rois = np.concatenate([xy, xy + rng.uniform(4.0, 30.0, (16, 2))], axis=1).astype(np.float32)
  rois[0] = box
  return canvas, box, jnp.asarray(rois)


def test_full_canvas_and_box_cropped_gt_give_the_same_targets():
  rng = np.random.default_rng(0)
  canvas, box, rois = _object_and_rois(rng)
  matched = jnp.zeros((rois.shape[0],), jnp.int32)
  full = mask_targets(canvas[None], jnp.array([[0.0, 0.0, 48.0, 40.0]]), rois, matched, 28)
  crop = canvas[6:28, 8:30]  # same pixel grid, restricted to the box: identical samples
  cropped = mask_targets(crop[None], jnp.asarray(box[None]), rois, matched, 28)
  np.testing.assert_array_equal(full, cropped)
  assert 0.2 < float(full[0].mean()) < 0.95  # a real object fills part of its own box
  # At twice the resolution (nearest upsampling) only resampling differences remain.
  fine = np.repeat(np.repeat(crop, 2, axis=0), 2, axis=1)
  resampled = mask_targets(fine[None], jnp.asarray(box[None]), rois, matched, 28)
  assert float(jnp.mean(resampled == full)) > 0.97


def test_paste_box_aligned_ones_fills_exactly_the_box():
  boxes = jnp.array([[3.0, 5.0, 11.0, 9.0], [3.3, 5.6, 11.2, 9.9], [-4.0, 12.5, 6.0, 30.0]])
  pasted = paste_masks(jnp.ones((3, 7, 5)), boxes, 16, 20)
  y, x = np.mgrid[:16, :20] + 0.5
  for got, (x1, y1, x2, y2) in zip(np.asarray(pasted), np.asarray(boxes)):
    np.testing.assert_array_equal(got, (x >= x1) & (x <= x2) & (y >= y1) & (y <= y2))


def test_paste_hand_case_bilinear_clamped_inside_the_box():
  # A 2 x 2 mask over (0, 0, 4, 4) in a 5 x 5 image (one cell = 2 px). Along each axis the pixel
  # centres 0.5 .. 3.5 sample the cells at -0.25, 0.25, 0.75, 1.25 -> clamp 1, 0.75, 0.25, 0 for the
  # row [1, 0]; pixel 4 is outside the box.
  mask = jnp.array([[[1.0, 0.0], [0.0, 0.0]]])
  box = jnp.array([[0.0, 0.0, 4.0, 4.0]])
  at_half = np.zeros((5, 5), bool)
  at_half[:2, :2] = True  # 1, 0.75, 0.5625
  np.testing.assert_array_equal(paste_masks(mask, box, 5, 5)[0], at_half)
  low = np.zeros((5, 5), bool)
  low[:3, :3] = True
  low[2, 2] = False  # 0.75 * 0.25 passes 0.15, 0.25 * 0.25 does not
  np.testing.assert_array_equal(paste_masks(mask, box, 5, 5, threshold=0.15)[0], low)
  # Outside the box nothing is pasted, even at threshold 0.
  np.testing.assert_array_equal(paste_masks(mask, box, 5, 5, threshold=0.0)[0],
                                np.pad(np.ones((4, 4), bool), ((0, 1), (0, 1))))


def _grid_sample_zeros(mask, box, height, width):
  """Detectron2's paste, pixel by pixel: grid_sample(align_corners=False, padding_mode="zeros")."""
  m_h, m_w = mask.shape
  out = np.zeros((height, width))
  for py in range(height):
    for px in range(width):
      gy = (py + 0.5 - box[1]) / (box[3] - box[1]) * m_h - 0.5
      gx = (px + 0.5 - box[0]) / (box[2] - box[0]) * m_w - 0.5
      y0, x0 = int(np.floor(gy)), int(np.floor(gx))
      for yy, wy in ((y0, 1 - (gy - y0)), (y0 + 1, gy - y0)):
        for xx, wx in ((x0, 1 - (gx - x0)), (x0 + 1, gx - x0)):
          if 0 <= yy < m_h and 0 <= xx < m_w:
            out[py, px] += wy * wx * mask[yy, xx]
  return out


def test_paste_border_zeros_is_detectron2s_grid_sample():
  rng = np.random.default_rng(0)
  masks = rng.uniform(0, 1, (3, 6, 5)).astype(np.float32)
  boxes = np.array([[3.0, 5.0, 11.0, 9.0], [2.3, 1.6, 17.2, 13.9], [-4.0, 10.5, 6.0, 30.0]], np.float32)
  pasted = np.asarray(paste_masks(jnp.asarray(masks), jnp.asarray(boxes), 16, 20, border="zeros"))
  for got, mask, box in zip(pasted, masks, boxes):
    np.testing.assert_array_equal(got, _grid_sample_zeros(mask, box, 16, 20) >= 0.5)
  eroded = np.asarray(paste_masks(jnp.ones((1, 2, 2)), jnp.array([[0.0, 0.0, 4.0, 4.0]]), 5, 5, border="zeros"))
  np.testing.assert_array_equal(eroded[0], np.pad(np.ones((4, 4), bool), ((0, 1), (0, 1))))  # 0.75 at the edge
  with pytest.raises(ValueError, match="border"):
    paste_masks(jnp.ones((1, 2, 2)), jnp.array([[0.0, 0.0, 4.0, 4.0]]), 5, 5, border="reflect")


def _torchvision_paste(mask, box, height, width):
  """torchvision's paste_masks_in_image, step by step: a ring of zero cells, the box scaled by
  (M + 2) / M about its centre and truncated to ints, the padded mask resized onto its pixels
  (PyTorch's bilinear, align_corners=False), written where it falls inside the image."""
  padded = np.pad(mask, 1)
  (m_h, m_w), (x1, y1, x2, y2) = padded.shape, box
  half_w, half_h = (x2 - x1) * 0.5 * m_w / mask.shape[1], (y2 - y1) * 0.5 * m_h / mask.shape[0]
  cx, cy = (x2 + x1) * 0.5, (y2 + y1) * 0.5
  x1, x2, y1, y2 = (int(v) for v in (cx - half_w, cx + half_w, cy - half_h, cy + half_h))
  h, w = y2 - y1 + 1, x2 - x1 + 1

  def taps(i, size, cells):
    src = max((i + 0.5) * cells / size - 0.5, 0.0)
    low = int(np.floor(src))
    return ((low, 1 - (src - low)), (min(low + 1, cells - 1), src - low))

  out = np.zeros((height, width))
  for py in range(max(y1, 0), min(y2 + 1, height)):
    for px in range(max(x1, 0), min(x2 + 1, width)):
      out[py, px] = sum(wy * wx * padded[yy, xx] for yy, wy in taps(py - y1, h, m_h) for xx, wx in taps(px - x1, w, m_w))
  return out


def test_paste_border_torchvision_is_torchvisions_paste():
  rng = np.random.default_rng(0)
  masks = rng.uniform(0, 1, (4, 6, 5)).astype(np.float32)
  boxes = np.array([[3.0, 5.0, 11.0, 9.0], [2.3, 1.6, 17.2, 13.9], [-4.0, 10.5, 6.0, 30.0], [7.2, 3.1, 7.9, 3.4]],
                   np.float32)
  pasted = np.asarray(paste_masks(jnp.asarray(masks), jnp.asarray(boxes), 16, 20, border="torchvision"))
  for got, mask, box in zip(pasted, masks, boxes):
    np.testing.assert_array_equal(got, _torchvision_paste(mask, box, 16, 20) >= 0.5)
  # An all-ones 2 x 2 mask on (0, 0, 4, 4): padded to 4 x 4 and resized onto pixels -2..6, where each
  # axis reads 0.17 0.61 1 1 1 0.61 0.17 from pixel -1 on: pixels 0..4 on, the corners (0.61^2) off.
  ones = np.asarray(paste_masks(jnp.ones((1, 2, 2)), jnp.array([[0.0, 0.0, 4.0, 4.0]]), 8, 8, border="torchvision"))
  expected = np.pad(np.ones((5, 5), bool), ((0, 3), (0, 3)))
  expected[[0, 0, 4, 4], [0, 4, 0, 4]] = False
  np.testing.assert_array_equal(ones[0], expected)


def test_paste_then_mask_targets_recovers_the_mask():
  disc = _ellipse(28, 28, 14.0, 13.0, 10.0, 12.0).astype(np.float32)
  box = jnp.array([[10.0, 6.0, 66.0, 62.0]])  # 56 px: the 28 x 28 mask is upsampled 2x
  pasted = paste_masks(jnp.asarray(disc[None]), box, 72, 80)
  assert pasted.shape == (1, 72, 80) and pasted.dtype == jnp.bool_
  back = mask_targets(pasted, jnp.array([[0.0, 0.0, 80.0, 72.0]]), box, jnp.array([0]), 28)
  assert float(jnp.mean(back[0] == disc)) > 0.97


def test_mask_targets_then_paste_recovers_the_object():
  canvas = _ellipse(40, 48, 17.0, 19.0, 10.0, 9.0)
  box = jnp.array([[8.0, 6.0, 30.0, 28.0]])
  target = mask_targets(canvas[None], jnp.array([[0.0, 0.0, 48.0, 40.0]]), box, jnp.array([0]), 28)
  back = np.asarray(paste_masks(target, box, 40, 48)[0])
  inter, union = (back & (canvas > 0)).sum(), (back | (canvas > 0)).sum()
  assert inter / union > 0.95


def test_degenerate_inputs_give_empty_masks_not_nans():
  pasted = paste_masks(jnp.ones((2, 4, 4)), jnp.array([[5.0, 5.0, 5.0, 5.0], [3.0, 3.0, 1.0, 1.0]]),
                       8, 8)
  assert not pasted.any()
  # A padding GT (zero box) matched by an RoI: all background.
  got = mask_targets(np.ones((1, 4, 4), np.uint8), jnp.zeros((1, 4)),
                     jnp.array([[1.0, 1.0, 6.0, 6.0]]), jnp.array([0]), 4)
  assert np.isfinite(got).all() and not got.any()


def test_jit_and_vmap():
  masks = jnp.asarray(np.random.default_rng(1).random((2, 3, 5, 5)), jnp.float32)
  boxes = jnp.array([[[1.0, 1.0, 6.0, 7.0]] * 3, [[0.0, 2.0, 8.0, 5.0]] * 3])
  batched = jax.jit(jax.vmap(lambda m, b: paste_masks(m, b, 8, 9)))(masks, boxes)
  np.testing.assert_array_equal(batched[1], paste_masks(masks[1], boxes[1], 8, 9))
  targets = jax.vmap(lambda m, b: mask_targets(m, b, b, jnp.array([2, 1, 0]), 6))(masks, boxes)
  np.testing.assert_array_equal(targets[0], mask_targets(masks[0], boxes[0], boxes[0],
                                                         jnp.array([2, 1, 0]), 6))


def test_argument_errors_name_the_argument():
  m, b, r = jnp.zeros((2, 4, 4)), jnp.zeros((2, 4)), jnp.zeros((3, 4))
  g = jnp.zeros((3,), jnp.int32)
  for args, name in [((m[0], b, r, g), "masks"), ((m, b[:, :3], r, g), "mask_boxes"),
                     ((m, b, r[None], g), "rois"), ((m, b, r, g.astype(jnp.float32)), "matched_gt"),
                     ((m, b[:1], r, g), "mask_boxes"), ((m, b, r, g[:2]), "matched_gt")]:
    with pytest.raises(ValueError, match=name):
      mask_targets(*args)
  with pytest.raises(ValueError, match="size"):
    mask_targets(m, b, r, g, 0)
  for args, name in [((m[0], b, 8, 8), "masks"), ((m, r, 8, 8), "boxes"),
                     ((m.astype(jnp.int32), b, 8, 8), "masks"), ((m, b, 8.0, 8), "height")]:
    with pytest.raises(ValueError, match=name):
      paste_masks(*args)
