"""RoIAlign / RoIWarp / RoIPool against independent references: TF crop_and_resize, plain-loop
transcriptions of the Detectron2 and torchvision kernels, and hand-worked 4 x 4 cases."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from mrcnn_jax.ops.roi_pooling import roi_align, roi_pool, roi_warp


def _bilinear(feat, y, x):
  """Detectron2's bilinear_interpolate (CPU/CUDA kernel rules), one point, float64."""
  h, w = feat.shape[:2]
  if y < -1.0 or y > h or x < -1.0 or x > w:
    return np.zeros(feat.shape[2:])
  y, x = max(y, 0.0), max(x, 0.0)
  y_low, x_low = int(y), int(x)
  if y_low >= h - 1:
    y_high = y_low = h - 1
    y = float(y_low)
  else:
    y_high = y_low + 1
  if x_low >= w - 1:
    x_high = x_low = w - 1
    x = float(x_low)
  else:
    x_high = x_low + 1
  ly, lx = y - y_low, x - x_low
  hy, hx = 1.0 - ly, 1.0 - lx
  return (hy * hx * feat[y_low, x_low] + hy * lx * feat[y_low, x_high]
          + ly * hx * feat[y_high, x_low] + ly * lx * feat[y_high, x_high])


def reference_roi_align(feat, boxes, out, scale, grid, aligned, cap=None):
  """Plain-loop RoIAlign (Detectron2 ROIAlign forward). grid 0: Detectron2's adaptive
  ceil(roi / out) samples per bin and axis, at most `cap` of them when given."""
  feat = np.asarray(feat, np.float64)
  sh, sw = out
  result = np.zeros((len(boxes), sh, sw, feat.shape[2]))
  offset = 0.5 if aligned else 0.0
  for r, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, np.float64)):
    start_x, start_y = x1 * scale - offset, y1 * scale - offset
    roi_w, roi_h = x2 * scale - offset - start_x, y2 * scale - offset - start_y
    if not aligned:
      roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
    bin_h, bin_w = roi_h / sh, roi_w / sw
    grid_h = grid or math.ceil(roi_h / sh)  # <= 0 for an empty RoI: no samples, output 0
    grid_w = grid or math.ceil(roi_w / sw)
    if cap:
      grid_h, grid_w = min(grid_h, cap), min(grid_w, cap)
    for ph in range(sh):
      for pw in range(sw):
        acc = 0.0
        for iy in range(grid_h):
          y = start_y + ph * bin_h + (iy + 0.5) * bin_h / grid_h
          for ix in range(grid_w):
            x = start_x + pw * bin_w + (ix + 0.5) * bin_w / grid_w
            acc = acc + _bilinear(feat, y, x)
        result[r, ph, pw] = acc / max(grid_h * grid_w, 1)
  return result


def adaptive_counts(boxes, out, scale, aligned):
  """Detectron2's adaptive samples per bin, [R, 2] (rows, columns), for sampling_ratio=0."""
  sizes = (boxes[:, [3, 2]] - boxes[:, [1, 0]]).astype(np.float64) * scale
  if not aligned:
    sizes = np.maximum(sizes, 1.0)
  return np.ceil(sizes / np.asarray(out)).astype(int)


def reference_roi_pool(feat, boxes, out, scale):
  """Plain-loop RoIPool (torchvision roi_pool forward; C round, floor/ceil bins, empty -> 0)."""
  feat = np.asarray(feat, np.float64)
  h, w = feat.shape[:2]
  sh, sw = out
  result = np.zeros((len(boxes), sh, sw, feat.shape[2]))
  for r, box in enumerate(np.asarray(boxes, np.float64)):
    x1, y1, x2, y2 = [int(math.floor(abs(v * scale) + 0.5)) * (1 if v >= 0 else -1) for v in box]
    roi_w, roi_h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
    for ph in range(sh):
      for pw in range(sw):
        hs = min(max(math.floor(ph * roi_h / sh) + y1, 0), h)
        he = min(max(math.ceil((ph + 1) * roi_h / sh) + y1, 0), h)
        ws = min(max(math.floor(pw * roi_w / sw) + x1, 0), w)
        we = min(max(math.ceil((pw + 1) * roi_w / sw) + x1, 0), w)
        if he > hs and we > ws:
          result[r, ph, pw] = feat[hs:he, ws:we].max(axis=(0, 1))
  return result


def _random_boxes(rng, n, canvas, lo=-0.3, hi=1.3):
  """Boxes anywhere in [lo, hi] * canvas, many crossing the border, some tiny."""
  a = rng.uniform(lo, hi, (n, 2)) * canvas
  b = a + rng.uniform(0.02, 0.8, (n, 2)) * canvas
  return np.concatenate([a, b], axis=1).astype(np.float32)


def test_matches_crop_and_resize_inside_the_map():
  tf = pytest.importorskip("tensorflow")
  rng = np.random.default_rng(0)
  h, w, s, g, scale = 9, 11, 3, 2, 0.5
  feat = rng.standard_normal((h, w, 4)).astype(np.float32)
  # Boxes well inside the map so no sample needs clamping: TF then samples the same points.
  boxes = np.array([[2.0, 3.0, 17.0, 12.0], [4.4, 2.2, 9.3, 13.7], [1.5, 1.5, 19.0, 15.0]],
                   np.float32)
  for aligned in (True, False):
    offset = 0.5 if aligned else 0.0
    start = boxes * scale - offset
    size = (boxes[:, 2:] - boxes[:, :2]) * scale  # (w, h), all > 1: aligned=False's clamp is idle
    n = s * g
    first = start[:, :2] + 0.5 * size / n  # first and last sample, (x, y)
    last = start[:, :2] + (n - 0.5) * size / n
    assert first.min() >= 0 and (last <= np.array([w - 1, h - 1])).all()
    norm = np.stack([first[:, 1] / (h - 1), first[:, 0] / (w - 1),
                     last[:, 1] / (h - 1), last[:, 0] / (w - 1)], axis=1)
    crops = tf.image.crop_and_resize(feat[None], norm, np.zeros(len(boxes), np.int32), (n, n))
    crops = crops.numpy()
    want = crops.reshape(len(boxes), s, g, s, g, 4).mean(axis=(2, 4))
    got = roi_align(jnp.asarray(feat), jnp.asarray(boxes), s, scale, g, aligned)
    np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"aligned={aligned}")


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("grid,out", [(2, (3, 3)), (1, (2, 3)), (3, (2, 2))])
def test_matches_reference_loop_across_borders(aligned, grid, out):
  rng = np.random.default_rng(1)
  feat = rng.standard_normal((6, 7, 3)).astype(np.float32)
  boxes = _random_boxes(rng, 12, 14.0)  # canvas 14 px at scale 0.5 -> a 7-cell map
  boxes[0] = [1.0, 1.0, 1.3, 1.2]  # smaller than a cell: aligned=False's 1 x 1 clamp matters
  boxes[1] = [-40.0, -40.0, -30.0, -30.0]  # entirely outside: zeros
  got = roi_align(jnp.asarray(feat), jnp.asarray(boxes), out, 0.5, grid, aligned)
  np.testing.assert_allclose(got, reference_roi_align(feat, boxes, out, 0.5, grid, aligned),
                             atol=1e-5)
  np.testing.assert_array_equal(got[1], 0.0)


def _boxes_of_all_shapes(rng, n, canvas):
  """Boxes of sides 0.3 px..1.2 canvas and aspect ratios 1/4..4, centred anywhere in [-0.2, 1.2] *
  canvas (many cross the border), plus an empty, an inverted and a sub-cell box."""
  centre = rng.uniform(-0.2, 1.2, (n, 2)) * canvas
  side = np.exp(rng.uniform(np.log(0.3), np.log(1.2 * canvas), n))
  ratio = np.exp(rng.uniform(-np.log(4.0), np.log(4.0), n))
  half = 0.5 * np.stack([side * np.sqrt(ratio), side / np.sqrt(ratio)], axis=1)
  boxes = np.concatenate([centre - half, centre + half], axis=1)
  boxes[:3] = [[3.0, 4.0, 3.0, 9.0], [6.0, 6.0, 2.0, 3.0], [5.0, 5.0, 5.4, 5.3]]
  return boxes.astype(np.float32)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("out", [(3, 3), (4, 3)])
def test_adaptive_matches_reference_loop(aligned, out):
  rng = np.random.default_rng(12)
  feat = rng.standard_normal((9, 11, 2)).astype(np.float32)
  boxes = _boxes_of_all_shapes(rng, 40, 20.0)  # scale 0.5: the map is 22 px wide, 18 tall
  counts = adaptive_counts(boxes, out, 0.5, aligned)
  assert counts.min() <= (0 if aligned else 1) and counts.max() >= 5  # empty RoIs to big ones
  got = roi_align(jnp.asarray(feat), jnp.asarray(boxes), out, 0.5, 0, aligned,
                  max_sampling_ratio=int(counts.max()))
  np.testing.assert_allclose(got, reference_roi_align(feat, boxes, out, 0.5, 0, aligned),
                             atol=1e-5)
  if aligned:
    np.testing.assert_array_equal(got[:2], 0.0)  # empty and inverted RoIs: no samples


def test_adaptive_hand_case():
  x = np.arange(4.0)
  feat = jnp.asarray((x[None, :] ** 2 + 10.0 * x[:, None])[..., None])  # f[y, x] = x^2 + 10 y
  box = jnp.array([[0.5, 0.5, 3.5, 2.0]])  # aligned: y from 0 over 1.5 cells, x from 0 over 3
  # 2 rows at y 0.375, 1.125 (mean 0.75); 3 columns at x 0.5, 1.5, 2.5, where the bilinear x^2 is
  # 0.5, 2.5, 6.5. A fixed 2 x 2 grid (or the cap 2) has x 0.75, 2.25 -> 0.75, 5.25.
  np.testing.assert_allclose(roi_align(feat, box, 1, 1.0, 0, max_sampling_ratio=3)[0, 0, 0],
                             [7.5 + 9.5 / 3], atol=1e-5)
  np.testing.assert_allclose(roi_align(feat, box, 1, 1.0, 0, max_sampling_ratio=2)[0, 0, 0],
                             [7.5 + 3.0], atol=1e-5)
  np.testing.assert_allclose(roi_align(feat, box, 1, 1.0, 2)[0, 0, 0], [7.5 + 3.0], atol=1e-5)
  # aligned=False: no shift, y 0.875, 1.625; x 1, 2, 3 -> 1, 4, 9.
  np.testing.assert_allclose(roi_align(feat, box, 1, 1.0, 0, False, 3)[0, 0, 0],
                             [12.5 + 14.0 / 3], atol=1e-5)
  # An empty RoI takes no samples (Detectron2: ceil(0) = 0) and gives 0.
  flat = jnp.array([[1.0, 1.0, 3.0, 1.0]])
  np.testing.assert_array_equal(roi_align(feat, flat, 2, 1.0, 0, max_sampling_ratio=3), 0.0)


def test_adaptive_past_the_cap_samples_like_the_fixed_cap():
  rng = np.random.default_rng(7)
  feat = rng.standard_normal((16, 16, 2)).astype(np.float32)
  boxes = np.array([[2.0, 1.0, 8.0, 25.0],    # 2 columns, 8 rows per bin: rows capped at 4
                    [1.0, 2.0, 30.0, 29.0],   # 9 rows, 10 columns: exactly sampling_ratio=4
                    [0.0, 0.0, 11.0, 12.0]],  # 4 x 4: within the cap
                   np.float32)
  cap = 4
  got = roi_align(jnp.asarray(feat), jnp.asarray(boxes), 3, 1.0, 0, max_sampling_ratio=cap)
  np.testing.assert_allclose(got, reference_roi_align(feat, boxes, (3, 3), 1.0, 0, True, cap),
                             atol=1e-5)
  np.testing.assert_allclose(got[1], roi_align(feat, boxes[1:2], 3, 1.0, cap)[0], atol=1e-6)
  uncapped = reference_roi_align(feat, boxes, (3, 3), 1.0, 0, True)
  np.testing.assert_allclose(got[2], uncapped[2], atol=1e-5)
  assert np.abs(got[:2] - uncapped[:2]).max() > 1e-3  # the truncation is real


def test_adaptive_roi_warp_is_adaptive_roi_align_on_the_rounded_box():
  rng = np.random.default_rng(11)
  feat = jnp.asarray(rng.standard_normal((10, 10, 2)), jnp.float32)
  boxes = jnp.array([[0.6, 0.4, 6.4, 8.6], [2.2, 1.5, 2.4, 9.7], [-3.0, 4.0, 11.0, 5.0]])
  # Cells x 1..6, y 0..9 -> [1, 7) x [0, 10) px; x 2..2, y 2..10 -> [2, 3) x [2, 11) px; ...
  rounded = jnp.array([[1.0, 0.0, 7.0, 10.0], [2.0, 2.0, 3.0, 11.0], [-3.0, 4.0, 12.0, 6.0]])
  np.testing.assert_allclose(roi_warp(feat, boxes, 2, 1.0, 0, max_sampling_ratio=8),
                             roi_align(feat, rounded, 2, 1.0, 0, max_sampling_ratio=8), atol=1e-6)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_adaptive_equals_fixed_grid_when_every_roi_needs_it(k):
  rng = np.random.default_rng(8)
  feat = jnp.asarray(rng.standard_normal((12, 12, 3)), jnp.float32)
  out = 3
  sizes = rng.uniform(k - 1 + 0.05, k - 0.05, (10, 2)) * out  # in cells, scale 1
  corner = rng.uniform(-2.0, 12.0 - sizes)
  boxes = jnp.asarray(np.concatenate([corner, corner + sizes], axis=1), jnp.float32)
  for aligned in (True, False):
    assert (adaptive_counts(np.asarray(boxes), (out, out), 1.0, aligned) == k).all()
    got = roi_align(feat, boxes, out, 1.0, 0, aligned, max_sampling_ratio=4)
    np.testing.assert_allclose(got, roi_align(feat, boxes, out, 1.0, k, aligned), atol=1e-6)


def test_adaptive_matches_crop_and_resize_per_box():
  tf = pytest.importorskip("tensorflow")
  rng = np.random.default_rng(9)
  h, w, s, scale = 12, 14, 2, 0.5
  feat = rng.standard_normal((h, w, 3)).astype(np.float32)
  boxes = np.array([[2.0, 3.0, 9.0, 20.0], [4.4, 2.2, 25.3, 13.7], [1.5, 1.5, 3.0, 4.0]],
                   np.float32)  # inside the map; grids (rows, columns) 5 x 2, 3 x 6, 1 x 1
  got = roi_align(jnp.asarray(feat), jnp.asarray(boxes), s, scale, 0, max_sampling_ratio=6)
  for r, box in enumerate(boxes):
    start = box[:2] * scale - 0.5  # (x, y)
    size = (box[2:] - box[:2]) * scale
    n = s * np.ceil(size / s).astype(int)  # samples along (x, y) over the whole RoI
    first, last = start + 0.5 * size / n, start + (n - 0.5) * size / n
    assert first.min() >= 0 and (last <= np.array([w - 1, h - 1])).all()
    norm = [[first[1] / (h - 1), first[0] / (w - 1), last[1] / (h - 1), last[0] / (w - 1)]]
    crop = tf.image.crop_and_resize(feat[None], norm, [0], (n[1], n[0])).numpy()[0]
    want = crop.reshape(s, n[1] // s, s, n[0] // s, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(got[r], want, atol=1e-5, err_msg=f"box {r}")


def test_adaptive_jit_equals_eager_and_gradients():
  rng = np.random.default_rng(10)
  feat = jnp.asarray(rng.standard_normal((6, 7, 2)), jnp.float32)
  boxes = jnp.asarray(_boxes_of_all_shapes(rng, 8, 12.0))
  f = lambda x: roi_align(x, boxes, 2, 0.5, 0, max_sampling_ratio=3)
  with jax.disable_jit():
    eager = f(feat)
  np.testing.assert_allclose(jax.jit(f)(feat), eager, atol=1e-6)
  grad = jax.grad(lambda x: jnp.sum(f(x) ** 2))(feat)
  assert np.isfinite(grad).all() and np.abs(grad).sum() > 0
  check_grads(f, (feat,), order=1, modes=("rev",), eps=1e-2, atol=1e-2, rtol=1e-2)


def test_roi_pool_hand_cases():
  feat = jnp.arange(16.0).reshape(4, 4, 1)  # f[y, x] = 4y + x
  boxes = jnp.array([
      [0.4, 0.6, 2.6, 3.2],  # cells x 0..3, y 1..3: bins x [0,2) [2,4), y rows {1,2} {2,3}
      [1.5, 0.5, 3.5, 2.5],  # halves round away from 0: x 2..4, y 1..3 (round-to-even: y 0..2)
      [-3.0, -3.0, 1.0, 1.0],  # three of four bins fall off the map -> 0
      [10.0, 10.0, 12.0, 12.0],  # outside: all bins empty
  ])
  want = np.array([[[9, 11], [13, 15]], [[11, 11], [15, 15]], [[0, 0], [0, 5]], [[0, 0], [0, 0]]])
  np.testing.assert_array_equal(roi_pool(feat, boxes, 2, 1.0)[..., 0], want)


def test_roi_pool_matches_reference_loop():
  rng = np.random.default_rng(2)
  feat = rng.standard_normal((6, 7, 2)).astype(np.float32)
  boxes = _random_boxes(rng, 12, 14.0)
  got = roi_pool(jnp.asarray(feat), jnp.asarray(boxes), (3, 2), 0.5)
  np.testing.assert_allclose(got, reference_roi_pool(feat, boxes, (3, 2), 0.5), atol=1e-6)
  # 7 bins over 7 cells: each bin exactly one cell (float32 (b + 1) * 7 / 7 may ceil to b + 2).
  feat = rng.standard_normal((10, 10, 1)).astype(np.float32)
  boxes = np.array([[2.0, 3.0, 8.0, 9.0], [0.0, 0.0, 9.0, 2.0]], np.float32)
  got = roi_pool(jnp.asarray(feat), jnp.asarray(boxes), 7, 1.0)
  np.testing.assert_array_equal(got[0, ..., 0], feat[3:10, 2:9, 0])
  np.testing.assert_allclose(got, reference_roi_pool(feat, boxes, (7, 7), 1.0), atol=1e-6)
  # The widest bins a static window must cover: RoIs as long as the map, one row high or the whole
  # map, rounded outwards at both ends, and one larger than the map that reaches into it.
  feat = rng.standard_normal((6, 40, 2)).astype(np.float32)
  boxes = np.array([[-0.5, 2.0, 39.5, 2.2], [-0.5, -0.5, 39.5, 5.5], [0.2, 0.6, 39.4, 4.4],
                    [-20.0, -3.0, 30.0, 9.0]], np.float32)
  for out in ((2, 3), (1, 7)):
    got = roi_pool(jnp.asarray(feat), jnp.asarray(boxes), out, 1.0)
    np.testing.assert_allclose(got, reference_roi_pool(feat, boxes, out, 1.0), atol=1e-6, err_msg=str(out))


def test_roi_pool_gradient_goes_to_each_bins_first_maximum():
  """Ties (a constant map) send each bin's gradient to its first cell in row-major order, as
  torchvision's argmax does; an empty bin gets none."""
  feat = jnp.zeros((4, 4, 1))
  boxes = jnp.array([[0.0, 0.0, 3.0, 3.0], [10.0, 10.0, 12.0, 12.0]])  # all 16 cells; off the map
  grad = jax.grad(lambda f: roi_pool(f, boxes, 2, 1.0).sum())(feat)[..., 0]
  want = np.zeros((4, 4))
  want[0, 0] = want[0, 2] = want[2, 0] = want[2, 2] = 1.0
  np.testing.assert_array_equal(grad, want)


def test_roi_warp_hand_case():
  feat = jnp.arange(16.0).reshape(4, 4, 1)  # linear, so bilinear samples are exact
  box = jnp.array([[0.6, 0.4, 2.4, 2.6]])
  # Quantized to cells x 1..2, y 0..3, i.e. the region x [0.5, 2.5], y [-0.5, 3.5]: bin centres
  # x {1, 2}, y {0.5, 2.5} -> 4y + x.
  want = np.array([[3.0, 4.0], [11.0, 12.0]])
  for grid in (1, 2):
    np.testing.assert_allclose(roi_warp(feat, box, 2, 1.0, grid)[0, ..., 0], want, atol=1e-6)
  # RoIAlign keeps the fractional box (shifted by -0.5): x centres {0.55, 1.45}, y {0.45, 1.55}.
  np.testing.assert_allclose(roi_align(feat, box, 2, 1.0, 1)[0, ..., 0],
                             [[2.35, 3.25], [6.75, 7.65]], atol=1e-5)


@pytest.mark.parametrize("op", [roi_align, roi_warp, roi_pool])
def test_gradients_match_finite_differences(op):
  rng = np.random.default_rng(3)
  # Distinct, well-separated values keep RoIPool's argmax stable under the finite-difference step.
  feat = jnp.asarray(rng.permutation(5 * 6 * 2).reshape(5, 6, 2).astype(np.float32))
  boxes = jnp.asarray(_random_boxes(rng, 4, 12.0, -0.1, 0.9))
  f = lambda x: op(x, boxes, 2, 0.5, 2)
  check_grads(f, (feat,), order=1, modes=("rev",), eps=1e-2, atol=1e-2, rtol=1e-2)


def test_gradient_is_the_adjoint():
  rng = np.random.default_rng(4)
  feat = jnp.asarray(rng.standard_normal((5, 6, 3)), jnp.float32)
  boxes = jnp.asarray(_random_boxes(rng, 5, 12.0))
  cot = jnp.asarray(rng.standard_normal((5, 3, 3, 3)), jnp.float32)
  out, vjp = jax.vjp(lambda x: roi_align(x, boxes, 3, 0.5), feat)
  (grad,) = vjp(cot)
  assert np.isfinite(grad).all()
  np.testing.assert_allclose(jnp.vdot(out, cot), jnp.vdot(feat, grad), rtol=1e-5)
  # No gradient flows into the boxes (Detectron2 returns none either).
  box_grad = jax.grad(lambda b: roi_align(feat, b, 3, 0.5).sum())(boxes)
  np.testing.assert_array_equal(box_grad, 0.0)


@pytest.mark.parametrize("op", [roi_align, roi_warp, roi_pool])
def test_jit_vmap_and_dtype(op):
  rng = np.random.default_rng(5)
  feat = jnp.asarray(rng.standard_normal((2, 5, 6, 3)), jnp.float32)
  boxes = jnp.asarray(_random_boxes(rng, 8, 12.0).reshape(2, 4, 4))
  eager = op(feat[0], boxes[0], 2, 0.5)
  jitted = jax.jit(op, static_argnums=(2, 3))(feat[0], boxes[0], 2, 0.5)
  np.testing.assert_allclose(eager, jitted, atol=1e-6)
  batched = jax.vmap(lambda f, b: op(f, b, 2, 0.5))(feat, boxes)
  np.testing.assert_allclose(batched[0], eager, atol=1e-6)
  half = op(feat[0].astype(jnp.bfloat16), boxes[0], 2, 0.5)
  assert half.dtype == jnp.bfloat16 and half.shape == (4, 2, 2, 3)
  np.testing.assert_allclose(half.astype(jnp.float32), eager, atol=0.05)


def test_argument_errors_name_the_argument():
  feat, boxes = jnp.zeros((4, 4, 2)), jnp.zeros((3, 4))
  cases = [
      (dict(features=jnp.zeros((4, 4))), "features"),
      (dict(features=jnp.zeros((4, 4, 2), jnp.int32)), "features"),
      (dict(boxes=jnp.zeros((3, 5))), "boxes"),
      (dict(boxes=jnp.zeros((3,))), "boxes"),
      (dict(output_size=0), "output_size"),
      (dict(output_size=(2, 2, 2)), "output_size"),
      (dict(spatial_scale=-1.0), "spatial_scale"),
      (dict(sampling_ratio=-1), "sampling_ratio"),
      (dict(sampling_ratio=1.5), "sampling_ratio"),
      (dict(sampling_ratio=0, max_sampling_ratio=-2), "max_sampling_ratio"),
      (dict(max_sampling_ratio=2.0), "max_sampling_ratio"),
  ]
  for op in (roi_align, roi_warp, roi_pool):
    for change, name in cases:
      if op is roi_pool and "sampling_ratio" in name:
        continue  # RoIPool takes no samples
      args = dict(features=feat, boxes=boxes, output_size=2, spatial_scale=1.0, sampling_ratio=2)
      args.update(change)
      with pytest.raises(ValueError, match=name):
        op(**args)
