"""FPN level assignment, multi-level pooling equal to single-level pooling at that level, and the
adaptive grid's size bound."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mrcnn_jax.ops.poolers import exact_grid_bound, fpn_levels, multilevel_pool
from mrcnn_jax.ops.roi_pooling import roi_align, roi_pool, roi_warp


def _square(side, x=0.0, y=0.0):
  return [x, y, x + side, y + side]


def test_fpn_levels_hand_cases():
  boxes = jnp.array([_square(224), _square(112), _square(448), _square(4), _square(5000),
                     _square(0), [10.0, 10.0, 10.0 + 448.0, 10.0 + 112.0], _square(223.0)])
  # sqrt(448 * 112) = 224 -> 4; 223 -> floor(4 + log2(0.9955)) = 3; a zero box -> clamped 2.
  np.testing.assert_array_equal(fpn_levels(boxes), [4, 3, 5, 2, 5, 2, 4, 3])
  np.testing.assert_array_equal(fpn_levels(boxes, 3, 6), [4, 3, 5, 3, 6, 3, 4, 3])


def _pyramid(rng, canvas, channels, levels=(2, 3, 4, 5)):
  return [jnp.asarray(rng.standard_normal((canvas >> l, canvas >> l, channels)), jnp.float32)
          for l in levels]


def _boxes_for_all_levels(rng, canvas):
  """Squares for levels 2,2,3,3,4,4,5,5, then a sliver across the canvas (level 2: the longest RoI
  in cells, the widest RoIPool bins)."""
  sides = np.array([20.0, 40.0, 120.0, 150.0, 230.0, 300.0, 470.0, 500.0])
  xy = rng.uniform(-10.0, canvas - sides[:, None] * 0.8, (len(sides), 2))
  squares = np.concatenate([xy, xy + sides[:, None]], axis=1)
  sliver = [[-1.5, 100.0, canvas + 1.5, 104.0]]
  return jnp.asarray(np.concatenate([squares, sliver]), jnp.float32)


@pytest.mark.parametrize("method,op", [("roi_align", roi_align), ("roi_warp", roi_warp),
                                       ("roi_pool", roi_pool)])
def test_multilevel_equals_single_level_at_assigned_level(method, op):
  rng = np.random.default_rng(0)
  canvas = 512
  feats = _pyramid(rng, canvas, 2)
  boxes = _boxes_for_all_levels(rng, canvas)
  levels = np.asarray(fpn_levels(boxes))
  assert set(levels) == {2, 3, 4, 5}
  got = multilevel_pool(feats, boxes, (3, 2), method=method, sampling_ratio=2)
  for r, level in enumerate(levels):
    want = op(feats[level - 2], boxes[r:r + 1], (3, 2), 2.0 ** -level, 2)
    np.testing.assert_allclose(got[r:r + 1], want, atol=1e-5, err_msg=f"roi {r} level {level}")


def test_multilevel_aligned_false_and_gradients():
  rng = np.random.default_rng(1)
  feats = _pyramid(rng, 512, 2)
  boxes = _boxes_for_all_levels(rng, 512)
  levels = np.asarray(fpn_levels(boxes))
  got = multilevel_pool(feats, boxes, 2, aligned=False, sampling_ratio=1)
  for r, level in enumerate(levels):
    want = roi_align(feats[level - 2], boxes[r:r + 1], 2, 2.0 ** -level, 1, aligned=False)
    np.testing.assert_allclose(got[r:r + 1], want, atol=1e-5)

  # The gradient reaches each level exactly as single-level pooling's gradient would.
  cot = jnp.asarray(rng.standard_normal(got.shape), jnp.float32)
  grads = jax.grad(lambda f: jnp.vdot(multilevel_pool(f, boxes, 2, aligned=False,
                                                      sampling_ratio=1), cot))(feats)
  for i, (feat, grad) in enumerate(zip(feats, grads)):
    at = levels == i + 2
    want = jax.grad(lambda f: jnp.vdot(roi_align(f, boxes[at], 2, 2.0 ** -(i + 2), 1,
                                                 aligned=False), cot[at]))(feat)
    np.testing.assert_allclose(grad, want, atol=1e-5)
    assert np.abs(grad).sum() > 0


def test_multilevel_custom_min_level_and_jit():
  rng = np.random.default_rng(2)
  feats = _pyramid(rng, 256, 3, levels=(3, 4))
  boxes = jnp.array([_square(50.0, 3.0, 4.0), _square(250.0)])  # levels 2 -> clamped 3, and 4
  got = jax.jit(lambda f, b: multilevel_pool(f, b, 2, min_level=3))(feats, boxes)
  np.testing.assert_allclose(got[0], roi_align(feats[0], boxes[:1], 2, 1 / 8)[0], atol=1e-5)
  np.testing.assert_allclose(got[1], roi_align(feats[1], boxes[1:], 2, 1 / 16)[0], atol=1e-5)


def test_adaptive_multilevel_equals_single_level():
  rng = np.random.default_rng(3)
  feats = _pyramid(rng, 512, 2)
  boxes = _boxes_for_all_levels(rng, 512)[:-1]  # the squares (the sliver needs more than the cap)
  levels = np.asarray(fpn_levels(boxes))
  got = multilevel_pool(feats, boxes, 7, sampling_ratio=0)  # derived cap: 4
  for r, level in enumerate(levels):
    want = roi_align(feats[level - 2], boxes[r:r + 1], 7, 2.0 ** -level, 0, max_sampling_ratio=4)
    np.testing.assert_allclose(got[r:r + 1], want, atol=1e-5, err_msg=f"roi {r} level {level}")
  # That cap, exact_grid_bound(7, 512), is exact for these square RoIs: a larger one changes
  # nothing.
  uncapped = multilevel_pool(feats, boxes, 7, sampling_ratio=0, max_sampling_ratio=8)
  np.testing.assert_allclose(got, uncapped, atol=1e-6)


@pytest.mark.parametrize("size,canvas,aspect", [(7, 512, 1.0), (7, 1024, 1.0), (7, 800, 2.0),
                                                (14, 1333, 1.0), (14, 512, 4.0)])
def test_exact_grid_bound_is_the_most_any_roi_needs(size, canvas, aspect):
  """Detectron2's ceil(extent / size) over dense RoIs of that aspect inside the canvas, each at
  its FPN level, peaks at exactly exact_grid_bound."""
  long_side = np.linspace(0.5, canvas, 40000, dtype=np.float32)
  for h, w in ((long_side, long_side / aspect), (long_side / aspect, long_side)):
    boxes = np.stack([np.zeros_like(h), np.zeros_like(h), w, h], axis=1)
    level = np.asarray(fpn_levels(jnp.asarray(boxes)))
    need = np.ceil(np.maximum(h, w) / 2.0 ** level / size).max()
    assert need == exact_grid_bound(size, canvas, aspect=aspect)


def test_argument_errors_name_the_argument():
  feats = [jnp.zeros((8, 8, 2)), jnp.zeros((4, 4, 2))]
  boxes = jnp.zeros((3, 4))
  with pytest.raises(ValueError, match="boxes"):
    fpn_levels(jnp.zeros((3, 3)))
  with pytest.raises(ValueError, match="features"):
    multilevel_pool(feats[0], boxes, 2)
  with pytest.raises(ValueError, match="features"):
    multilevel_pool([feats[0], jnp.zeros((4, 4, 3))], boxes, 2)
  with pytest.raises(ValueError, match=r"features\[1\]"):
    multilevel_pool([feats[0], jnp.zeros((4, 4))], boxes, 2)
  with pytest.raises(ValueError, match="boxes"):
    multilevel_pool(feats, jnp.zeros((3, 4, 1)), 2)
  with pytest.raises(ValueError, match="method"):
    multilevel_pool(feats, boxes, 2, method="bilinear")
  with pytest.raises(ValueError, match="sampling_ratio"):
    multilevel_pool(feats, boxes, 2, sampling_ratio=-1)
  with pytest.raises(ValueError, match="max_sampling_ratio"):
    multilevel_pool(feats, boxes, 2, sampling_ratio=0, max_sampling_ratio=-1)
