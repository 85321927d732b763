"""Tests for mrcnn_jax.ops.boxes: IoU against pycocotools, hand-computed coder values, round trips."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from pycocotools import mask as coco_mask

from mrcnn_jax.ops import boxes as B


def random_boxes(rng, n, canvas=100.0, max_side=40.0):
  xy = rng.uniform(0, canvas, (n, 2))
  wh = rng.uniform(0.5, max_side, (n, 2))
  return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


def to_xywh(b):
  return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1).astype(np.float64)


def test_box_iou_matches_pycocotools():
  rng = np.random.default_rng(0)
  a, b = random_boxes(rng, 40), random_boxes(rng, 30)
  want = coco_mask.iou(to_xywh(a), to_xywh(b), np.zeros(len(b), np.uint8))
  got = np.asarray(B.box_iou(a, b))
  assert got.shape == (40, 30)
  np.testing.assert_allclose(got, want, atol=1e-5)
  assert (want > 0).mean() > 0.1  # the random boxes do overlap


def test_box_iou_hand_values_and_zero_union():
  a = jnp.array([[0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 5.0, 5.0]])
  b = jnp.array([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 5.0, 5.0]])
  want = [[1 / 7, 1.0, 0.0], [0.0, 0.0, 0.0]]
  np.testing.assert_allclose(B.box_iou(a, b), want, rtol=1e-6)
  assert not np.isnan(np.asarray(B.box_iou(a, b))).any()


def test_box_area():
  b = jnp.array([[[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 0.0, 5.0]]])  # second box is inverted
  np.testing.assert_allclose(B.box_area(b), [[6.0, 0.0]])


def test_float16_photo_sized_boxes_keep_their_iou():
  """300 x 300 boxes: float16 areas (90,000) overflow to inf, so IoU would read 0; we compute in f32."""
  a = jnp.asarray([[0.0, 0.0, 300.0, 300.0]], jnp.float16)
  b = jnp.asarray([[0.0, 0.0, 300.0, 150.0]], jnp.float16)
  assert float(B.box_area(a)[0]) == 90000.0 and B.box_area(a).dtype == jnp.float32
  np.testing.assert_allclose(B.box_iou(a, b), [[0.5]])


def test_clip_boxes_with_traced_size():
  b = jnp.array([[-5.0, 2.0, 30.0, 50.0], [3.0, -1.0, 8.0, 9.0]])
  want = [[0.0, 2.0, 20.0, 40.0], [3.0, 0.0, 8.0, 9.0]]
  np.testing.assert_allclose(B.clip_boxes(b, 40, 20), want)
  np.testing.assert_allclose(jax.jit(B.clip_boxes)(b, jnp.int32(40), jnp.int32(20)), want)


def test_encode_hand_values():
  anchor = jnp.array([0.0, 0.0, 10.0, 10.0])
  box = jnp.array([5.0, 5.0, 25.0, 15.0])  # centre (15, 10), size 20 x 10; anchor centre (5, 5)
  np.testing.assert_allclose(B.encode_boxes(box, anchor), [1.0, 0.5, math.log(2.0), 0.0], rtol=1e-6)
  np.testing.assert_allclose(B.encode_boxes(box, anchor, (10, 10, 5, 5)),
                             [10.0, 5.0, 5 * math.log(2.0), 0.0], rtol=1e-6)


def test_decode_clamps_scale():
  anchor = jnp.array([[0.0, 0.0, 16.0, 16.0]])
  out = B.decode_boxes(jnp.array([[0.0, 0.0, 100.0, -2.0]]), anchor)
  w, h = out[0, 2] - out[0, 0], out[0, 3] - out[0, 1]
  np.testing.assert_allclose(w, 1000.0, rtol=1e-5)
  np.testing.assert_allclose(h, 16.0 * math.exp(-2.0), rtol=1e-5)
  assert np.isfinite(np.asarray(out)).all()


side = st.floats(1.0, 500.0)
corner = st.floats(-100.0, 1000.0)


@settings(max_examples=60, deadline=None)
@given(st.tuples(corner, corner, side, side), st.tuples(corner, corner, side, side),
       st.sampled_from([(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]))
def test_decode_inverts_encode(box, anchor, weights):
  to_xyxy = lambda t: jnp.array([t[0], t[1], t[0] + t[2], t[1] + t[3]], jnp.float32)
  box, anchor = to_xyxy(box), to_xyxy(anchor)
  if max(box[2] - box[0], box[3] - box[1]) / min(anchor[2] - anchor[0], anchor[3] - anchor[1]) >= 62:
    return  # beyond the decode clamp (1000 / 16) by construction
  deltas = B.encode_boxes(box, anchor, weights)
  np.testing.assert_allclose(B.decode_boxes(deltas, anchor, weights), box, rtol=1e-4, atol=1e-2)


def test_coder_broadcasts_and_jit_matches_eager():
  rng = np.random.default_rng(1)
  anchors = random_boxes(rng, 6)
  boxes = random_boxes(rng, 6 * 3).reshape(6, 3, 4)  # e.g. class-specific boxes per anchor
  deltas = B.encode_boxes(boxes, anchors[:, None], (10, 10, 5, 5))
  assert deltas.shape == (6, 3, 4)
  eager = B.decode_boxes(deltas, anchors[:, None], (10, 10, 5, 5))
  jitted = jax.jit(B.decode_boxes, static_argnums=2)(deltas, anchors[:, None], (10, 10, 5, 5))
  np.testing.assert_allclose(jitted, eager, rtol=1e-6)
  np.testing.assert_allclose(eager, boxes, rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(jax.jit(B.box_iou)(anchors, anchors), B.box_iou(anchors, anchors))


@pytest.mark.parametrize("call, name", [
    (lambda: B.box_iou(jnp.zeros((3, 5)), jnp.zeros((2, 4))), "a"),
    (lambda: B.box_iou(jnp.zeros((3, 4)), jnp.zeros((4,))), "b"),
    (lambda: B.box_iou(jnp.zeros((3, 4), jnp.int32), jnp.zeros((2, 4))), "a"),
    (lambda: B.box_area(jnp.zeros((3, 3))), "boxes"),
    (lambda: B.encode_boxes(jnp.zeros((3, 4)), jnp.zeros((3, 2))), "anchors"),
    (lambda: B.decode_boxes(jnp.zeros((3, 4), jnp.int32), jnp.zeros((3, 4))), "deltas"),
    (lambda: B.decode_boxes(jnp.zeros((3, 4)), jnp.zeros((3, 4)), (1, 1, 1)), "weights"),
    (lambda: B.clip_boxes(jnp.zeros((3, 4)), jnp.array([4, 4]), 3), "height"),
])
def test_bad_arguments_raise(call, name):
  with pytest.raises(ValueError, match=name):
    call()


def test_bad_arguments_raise_at_trace_time():
  with pytest.raises(ValueError, match="b must"):
    jax.jit(B.box_iou)(jnp.zeros((3, 4)), jnp.zeros((2, 3)))
