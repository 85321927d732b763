"""Tests for mrcnn_jax.ops.anchors: hand-computed grids, Detectron2 cell shapes, ordering, counts."""

import math

import numpy as np
import pytest

from mrcnn_jax.ops import anchors as A


def test_tiny_canvas_by_hand():
  # 6 x 10 canvas, stride 4 -> 2 rows x 3 columns; one 8 x 8 anchor per cell, centred at (4x, 4y).
  got = np.asarray(A.c4_anchors(6, 10, stride=4, sizes=(8,), ratios=(1.0,)))
  want = [[-4, -4, 4, 4], [0, -4, 8, 4], [4, -4, 12, 4],
          [-4, 0, 4, 8], [0, 0, 8, 8], [4, 0, 12, 8]]
  np.testing.assert_allclose(got, want)


def test_cell_shapes_match_detectron2():
  # Detectron2 DefaultAnchorGenerator, sizes (32, 64), ratios (0.25, 1, 4): sizes outer, ratios inner.
  got = np.asarray(A.c4_anchors(1, 1, stride=16, sizes=(32, 64), ratios=(0.25, 1.0, 4.0)))
  want = [[-32, -8, 32, 8], [-16, -16, 16, 16], [-8, -32, 8, 32],
          [-64, -16, 64, 16], [-32, -32, 32, 32], [-16, -64, 16, 64]]
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_rounded_cells_are_torchvisions():
  # torchvision's AnchorGenerator, sizes 32 and 512, ratios (0.5, 1, 2): corners rounded before shifting.
  p2, p6 = (np.asarray(a[:3]) for a in A.fpn_anchors(64, 64, rounded=True)[::4])
  np.testing.assert_array_equal(p2, [[-23, -11, 23, 11], [-16, -16, 16, 16], [-11, -23, 11, 23]])
  np.testing.assert_array_equal(p6, [[-362, -181, 362, 181], [-256, -256, 256, 256], [-181, -362, 181, 362]])
  shifted = np.asarray(A.c4_anchors(32, 32, stride=16, sizes=(32,), ratios=(0.5,), rounded=True))
  np.testing.assert_array_equal(shifted[3], [-7, 5, 39, 27])  # cell (1, 1)


def test_ratio_is_height_over_width_and_area_is_size_squared():
  level = np.asarray(A.fpn_anchors(32, 32, strides=(16,), sizes=(32,), ratios=(0.5, 1.0, 2.0))[0])
  w, h = level[:3, 2] - level[:3, 0], level[:3, 3] - level[:3, 1]
  np.testing.assert_allclose(h / w, [0.5, 1.0, 2.0], rtol=1e-6)
  np.testing.assert_allclose(w * h, 32.0**2, rtol=1e-6)


def test_fpn_counts_and_conv_ordering():
  height, width = 100, 72  # not multiples of the strides: ceil
  levels = A.fpn_anchors(height, width)
  assert len(levels) == 5
  for anchors, stride, size in zip(levels, (4, 8, 16, 32, 64), (32, 64, 128, 256, 512)):
    rows, cols = math.ceil(height / stride), math.ceil(width / stride)
    assert isinstance(anchors, np.ndarray) and anchors.dtype == np.float32  # a jit constant
    assert anchors.shape == (rows * cols * 3, 4)
    grid = np.asarray(anchors).reshape(rows, cols, 3, 4)  # what a conv output [Hl, Wl, A] reshapes to
    centre = (grid[..., :2] + grid[..., 2:]) / 2
    ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    np.testing.assert_allclose(centre[..., 0], np.repeat(xs[..., None] * stride, 3, -1), atol=1e-4)
    np.testing.assert_allclose(centre[..., 1], np.repeat(ys[..., None] * stride, 3, -1), atol=1e-4)
    side = np.sqrt((grid[..., 2] - grid[..., 0]) * (grid[..., 3] - grid[..., 1]))
    np.testing.assert_allclose(side, size, rtol=1e-5)


def test_c4_count():
  anchors = A.c4_anchors(64, 48)
  assert anchors.shape == (4 * 3 * 15, 4)


@pytest.mark.parametrize("call, name", [
    (lambda: A.fpn_anchors(32.0, 32), "height"),
    (lambda: A.fpn_anchors(32, 0), "width"),
    (lambda: A.fpn_anchors(32, 32, sizes=(32, 64)), "sizes"),
    (lambda: A.fpn_anchors(32, 32, ratios=()), "ratios"),
    (lambda: A.c4_anchors(32, 32, stride=2.5), "stride"),
    (lambda: A.c4_anchors(32, 32, sizes=(0,)), "sizes"),
])
def test_bad_arguments_raise(call, name):
  with pytest.raises(ValueError, match=name):
    call()
