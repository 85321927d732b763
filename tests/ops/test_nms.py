"""Tests for mrcnn_jax.ops.nms against tf.image.non_max_suppression (greedy, IoU > threshold)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from mrcnn_jax.ops import batched_nms, nms  # noqa: E402


def random_case(seed, n, canvas=200.0, max_side=60.0):
  rng = np.random.default_rng(seed)
  xy = rng.uniform(0, canvas, (n, 2))
  wh = rng.uniform(1.0, max_side, (n, 2))
  boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
  return boxes, rng.uniform(size=n).astype(np.float32)


def tf_nms(boxes, scores, threshold, max_output):
  """Reference kept indices (TF's IoU is symmetric in x/y, so (x1, y1, x2, y2) works as is)."""
  if len(boxes) == 0:
    return np.zeros((0,), np.int64)
  return tf.image.non_max_suppression(boxes, scores, max_output, threshold).numpy()


def check_against(ref, indices, num_valid, max_output):
  indices, num_valid = np.asarray(indices), int(num_valid)
  assert indices.shape == (max_output,) and indices.dtype == np.int32
  assert num_valid == min(len(ref), max_output)
  np.testing.assert_array_equal(indices[:num_valid], ref[:max_output])
  assert (indices[num_valid:] == -1).all()


@pytest.mark.parametrize("n, threshold, max_output, tile", [
    (1, 0.5, 4, 512),
    (37, 0.5, 37, 512),
    (400, 0.3, 400, 512),
    (400, 0.7, 100, 512),     # truncated output
    (2000, 0.5, 2000, 512),   # 4 tiles at the default size
    (2000, 0.7, 300, 512),    # early stop after max_output boxes
    (700, 0.4, 700, 64),      # 11 small tiles
    (700, 0.0, 700, 64),      # any overlap suppresses
])
def test_matches_tensorflow(n, threshold, max_output, tile):
  boxes, scores = random_case(n, n)
  indices, num_valid = nms(boxes, scores, threshold, max_output, tile_size=tile)
  check_against(tf_nms(boxes, scores, threshold, max_output), indices, num_valid, max_output)


def test_invalid_boxes_are_never_kept():
  boxes, scores = random_case(3, 600)
  invalid = np.random.default_rng(4).uniform(size=600) < 0.4
  masked = np.where(invalid, -np.inf, scores).astype(np.float32)
  indices, num_valid = nms(boxes, masked, 0.5, 600, tile_size=128)
  valid_ids = np.flatnonzero(~invalid)
  ref = valid_ids[tf_nms(boxes[valid_ids], scores[valid_ids], 0.5, 600)]
  check_against(ref, indices, num_valid, 600)


def test_zero_valid_boxes():
  boxes, _ = random_case(5, 50)
  indices, num_valid = nms(boxes, jnp.full((50,), -jnp.inf), 0.5, 10)
  assert int(num_valid) == 0 and (np.asarray(indices) == -1).all()
  indices, num_valid = nms(jnp.zeros((0, 4)), jnp.zeros((0,)), 0.5, 3)
  assert int(num_valid) == 0 and indices.shape == (3,) and (np.asarray(indices) == -1).all()


def test_equal_scores_keep_lower_index_and_permutation_maps_through():
  a, b, far = [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 9.0], [50.0, 50.0, 60.0, 60.0]
  boxes = jnp.array([far, a, b])
  indices, num_valid = nms(boxes, jnp.ones(3), 0.5, 3)
  np.testing.assert_array_equal(indices, [0, 1, -1])  # tie: input order decides, b (index 2) dies
  indices, _ = nms(boxes[::-1], jnp.ones(3), 0.5, 3)
  np.testing.assert_array_equal(indices, [0, 2, -1])  # now b comes first and a dies
  # With distinct scores the result does not depend on the input order.
  boxes, scores = random_case(6, 300)
  perm = np.random.default_rng(7).permutation(300)
  base, nv = nms(boxes, scores, 0.5, 300)
  permuted, nv_p = nms(boxes[perm], scores[perm], 0.5, 300)
  assert int(nv) == int(nv_p)
  np.testing.assert_array_equal(perm[np.asarray(permuted)[:int(nv)]], np.asarray(base)[:int(nv)])


def test_jit_matches_eager_and_vmap():
  boxes, scores = random_case(8, 16)  # tiny: eager mode dispatches every loop step op by op
  jitted = nms(boxes, scores, 0.3, 8, tile_size=8)
  with jax.disable_jit():
    eager = nms(boxes, scores, 0.3, 8, tile_size=8)
  np.testing.assert_array_equal(jitted[0], eager[0])
  assert int(jitted[1]) == int(eager[1])
  check_against(tf_nms(boxes, scores, 0.3, 8), *jitted, 8)
  boxes2, scores2 = random_case(9, 16)
  batched = jax.vmap(lambda b, s: nms(b, s, 0.3, 8, tile_size=8))(
      np.stack([boxes, boxes2]), np.stack([scores, scores2]))
  np.testing.assert_array_equal(batched[0][0], jitted[0])
  np.testing.assert_array_equal(batched[0][1], nms(boxes2, scores2, 0.3, 8, tile_size=8)[0])


@pytest.mark.parametrize("n, num_classes, threshold, max_output, tile", [
    (300, 4, 0.5, 300, 512),
    (900, 7, 0.3, 200, 128),
])
def test_batched_matches_per_class_loop(n, num_classes, threshold, max_output, tile):
  boxes, scores = random_case(n + 1, n)
  classes = np.random.default_rng(n).integers(0, num_classes, n).astype(np.int32)
  kept = []
  for c in range(num_classes):
    ids = np.flatnonzero(classes == c)
    kept.append(ids[tf_nms(boxes[ids], scores[ids], threshold, len(ids))])
  kept = np.concatenate(kept)
  ref = kept[np.argsort(-scores[kept], kind="stable")]
  indices, num_valid = batched_nms(boxes, scores, classes, threshold, max_output, tile_size=tile)
  check_against(ref, indices, num_valid, max_output)
  # Identical boxes of different classes survive together.
  same = jnp.tile(jnp.array([[0.0, 0.0, 5.0, 5.0]]), (3, 1))
  indices, num_valid = batched_nms(same, jnp.array([0.9, 0.8, 0.7]), jnp.array([1, 2, 1]), 0.5, 3)
  np.testing.assert_array_equal(indices, [0, 1, -1])


@pytest.mark.parametrize("call, name", [
    (lambda: nms(jnp.zeros((5, 3)), jnp.zeros(5), 0.5, 2), "boxes"),
    (lambda: nms(jnp.zeros((5, 4)), jnp.zeros((5, 1)), 0.5, 2), "scores"),
    (lambda: nms(jnp.zeros((5, 4)), jnp.zeros(4), 0.5, 2), "scores"),
    (lambda: nms(jnp.zeros((5, 4), jnp.int32), jnp.zeros(5), 0.5, 2), "boxes"),
    (lambda: nms(jnp.zeros((5, 4)), jnp.zeros(5), 0.5, -1), "max_output"),
    (lambda: nms(jnp.zeros((5, 4)), jnp.zeros(5), 0.5, 2, tile_size=100), "tile_size"),
    (lambda: batched_nms(jnp.zeros((5, 4)), jnp.zeros(5), jnp.zeros(5), 0.5, 2), "classes"),
    (lambda: batched_nms(jnp.zeros((5, 4)), jnp.zeros(5), jnp.zeros(4, jnp.int32), 0.5, 2), "classes"),
])
def test_bad_arguments_raise(call, name):
  with pytest.raises(ValueError, match=name):
    call()
