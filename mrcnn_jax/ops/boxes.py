"""Axis-aligned boxes (x1, y1, x2, y2) in absolute pixels: area, IoU, clipping and the box coder.

The coder follows Detectron2's Box2BoxTransform: widths are x2 - x1 (no +1), centres are
x1 + w / 2, deltas are (wx * dx / w_a, wy * dy / h_a, ww * log(w / w_a), wh * log(h / h_a)).
"""

import math

import jax.numpy as jnp

from mrcnn_jax.ops._checks import check_array

# Largest log-scale a decoded box may grow by (Detectron2's scale_clamp): 1000 / 16 times.
SCALE_CLAMP = math.log(1000.0 / 16)


def _at_least_f32(boxes):
  return boxes.astype(jnp.promote_types(boxes.dtype, jnp.float32))


def _sides(boxes):
  """Widths and heights (clamped at 0) of boxes [..., 4]."""
  w = jnp.maximum(boxes[..., 2] - boxes[..., 0], 0.0)
  h = jnp.maximum(boxes[..., 3] - boxes[..., 1], 0.0)
  return w, h


def box_area(boxes):
  """Area of boxes [..., 4] -> [...] float32 (or wider); inverted boxes have area 0.

  Computed in at least float32: float16 areas overflow past 65504 (a 256 x 256 box).
  """
  boxes = _at_least_f32(check_array("boxes", boxes, last_dim=4, kind="float"))
  w, h = _sides(boxes)
  return w * h


def box_iou(a, b):
  """Pairwise intersection over union of a [N, 4] and b [M, 4] -> [N, M] (0 where the union is 0).

  Computed in at least float32, whatever the boxes' dtype (float16 areas overflow on photo sizes).
  """
  a = check_array("a", a, ndim=2, last_dim=4, kind="float")
  b = check_array("b", b, ndim=2, last_dim=4, kind="float")
  return pairwise_iou(_at_least_f32(a), _at_least_f32(b))


def pairwise_iou(a, b):
  """box_iou without argument checks, for callers that validated already (broadcasts a[..., :, 4])."""
  lo = jnp.maximum(a[..., :, None, :2], b[..., None, :, :2])
  hi = jnp.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
  wh = jnp.maximum(hi - lo, 0.0)
  inter = wh[..., 0] * wh[..., 1]
  wa, ha = _sides(a)
  wb, hb = _sides(b)
  union = (wa * ha)[..., :, None] + (wb * hb)[..., None, :] - inter
  return jnp.where(union > 0, inter / jnp.where(union > 0, union, 1.0), 0.0)


def clip_boxes(boxes, height, width):
  """Clips boxes [..., 4] to the canvas [0, width] x [0, height]; height, width: scalars (may be traced)."""
  boxes = check_array("boxes", boxes, last_dim=4, kind="float")
  height = check_array("height", height, ndim=0)
  width = check_array("width", width, ndim=0)
  x = jnp.clip(boxes[..., 0::2], 0.0, width.astype(boxes.dtype))
  y = jnp.clip(boxes[..., 1::2], 0.0, height.astype(boxes.dtype))
  return jnp.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], axis=-1)


def _centre_form(boxes):
  """(cx, cy, w, h) of boxes [..., 4], without clamping (the coder needs the raw sides)."""
  w = boxes[..., 2] - boxes[..., 0]
  h = boxes[..., 3] - boxes[..., 1]
  return boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h, w, h


def encode_boxes(boxes, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
  """Regression targets that turn anchors [..., 4] into boxes [..., 4] -> deltas [..., 4].

  Shapes broadcast against each other. Anchors must have positive width and height.
  """
  boxes = check_array("boxes", boxes, last_dim=4, kind="float")
  anchors = check_array("anchors", anchors, last_dim=4, kind="float")
  wx, wy, ww, wh = _check_weights(weights)
  gx, gy, gw, gh = _centre_form(boxes)
  ax, ay, aw, ah = _centre_form(anchors)
  return jnp.stack([
      wx * (gx - ax) / aw,
      wy * (gy - ay) / ah,
      ww * jnp.log(gw / aw),
      wh * jnp.log(gh / ah),
  ], axis=-1)


def decode_boxes(deltas, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
  """Applies deltas [..., 4] to anchors [..., 4] -> boxes [..., 4]; inverse of encode_boxes.

  The log-scale deltas are clamped at log(1000 / 16) so that exp() cannot overflow.
  """
  deltas = check_array("deltas", deltas, last_dim=4, kind="float")
  anchors = check_array("anchors", anchors, last_dim=4, kind="float")
  wx, wy, ww, wh = _check_weights(weights)
  anchors = anchors.astype(deltas.dtype)
  ax, ay, aw, ah = _centre_form(anchors)
  cx = deltas[..., 0] / wx * aw + ax
  cy = deltas[..., 1] / wy * ah + ay
  w = jnp.exp(jnp.minimum(deltas[..., 2] / ww, SCALE_CLAMP)) * aw
  h = jnp.exp(jnp.minimum(deltas[..., 3] / wh, SCALE_CLAMP)) * ah
  return jnp.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)


def _check_weights(weights):
  weights = tuple(float(w) for w in weights)
  if len(weights) != 4 or min(weights) <= 0:
    raise ValueError(f"weights must be 4 positive numbers, got {weights}")
  return weights
