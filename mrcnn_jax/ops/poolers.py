"""Multi-level (FPN) RoI pooling: each RoI is pooled from the pyramid level its size calls for.

Level assignment is FPN's eq. (1) as in Detectron2's `assign_boxes_to_levels`:
floor(canonical_level + log2(sqrt(area) / canonical_size + 1e-8)), clamped to
[min_level, max_level].
Level l has stride 2**l, so its spatial_scale is 1 / 2**l.

Static shapes, no grouping of RoIs by level: the levels are flattened into one
[sum_l H_l * W_l, C] buffer and every RoI samples (RoIAlign, RoIWarp) or maxes over (RoIPool) its
own level through per-RoI offsets, so the cost is that of a single-level pooler. RoIPool's static
window, G x G cells per bin, covers the widest bin of any RoI inside the canvas (P2 bounds it:
G = ceil((canvas / 4 + 2) / S) + 1, 6 for 7 x 7 bins on a 128 px canvas, 30 at 800 px).

Detectron2's adaptive RoIAlign grid (sampling_ratio=0, ceil(extent / S) samples per bin and axis)
needs a static cap G (roi_pooling's docstring). The level rule bounds an RoI's extent in cells:
below max_level, an RoI of geometric-mean side s < canonical_size * 2**(l - 3) goes to level l, so
its long side h = s * sqrt(aspect) spans fewer than 28 * sqrt(aspect) cells (224 / 8 at every
level); at max_level only the canvas bounds it (h / 2**l). `exact_grid_bound` turns that into G:

  G exact for every RoI       | square RoIs: canvas 512 800 1024 1333 | aspect <= 2 | aspect <= 4
  7 x 7 (box), P2..P5         |                      4   4    5    6  |      6      |      8
  14 x 14 (mask), P2..P5      |                      2   2    3    3  |      3      |      4

(max(ceil(4 * sqrt(aspect)), ceil(canvas / 224)) for 7 x 7, and with 2 and 448 for 14 x 14.)
Conversely a cap G is exact for aspect ratios up to (G * S / 28)**2 (7 x 7: G 4, 5, 6, 8 -> 1, 1.56,
2.25, 4; 14 x 14: G 2, 3, 4 -> 1, 2.25, 4) on canvases up to 32 * S * G px; a longer RoI on P2..P4
needs up to ceil(28 * sqrt(aspect) / S) samples and gets G.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from mrcnn_jax.ops._checks import check_array
from mrcnn_jax.ops.roi_pooling import (check_output_size, max_pool_regions, pool_grid,
                                     quantize_boxes, roi_regions, sample_regions, sampling_grid)

METHODS = ("roi_align", "roi_pool", "roi_warp")


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def fpn_levels(boxes, min_level=2, max_level=5, canonical_size=224, canonical_level=4):
  """Pyramid level of each box [R, 4] -> [R] int32 in [min_level, max_level]."""
  boxes = check_array("boxes", boxes, ndim=2, last_dim=4, kind="float")
  area = jnp.maximum(boxes[:, 2] - boxes[:, 0], 0.0) * jnp.maximum(boxes[:, 3] - boxes[:, 1], 0.0)
  level = jnp.floor(canonical_level + jnp.log2(jnp.sqrt(area) / canonical_size + 1e-8))
  return jnp.clip(level, min_level, max_level).astype(jnp.int32)


def exact_grid_bound(output_size, canvas, min_level=2, max_level=5, canonical_size=224,
                     canonical_level=4, aspect=1.0, extra_cells=0):
  """A max_sampling_ratio G that makes the adaptive grid exact for every RoI inside a square
  canvas (side `canvas` px) whose long side is at most `aspect` times its short side, each pooled
  from its FPN level (fpn_levels' arguments); the smallest such G when extra_cells is 0.

  extra_cells: cells an RoI may span beyond its box (2 for RoIWarp's rounding of both ends).
  """
  out = min(check_output_size(output_size))
  bound = 1
  for level in range(min_level, max_level + 1):
    if level > min_level and canonical_size * 2.0 ** (level - canonical_level) > canvas:
      break  # no RoI inside the canvas is this large
    top = canvas  # the longest side an RoI on this level can have, in canvas px
    if level < max_level:
      top = min(top, canonical_size * 2.0 ** (level + 1 - canonical_level) * math.sqrt(aspect))
    bound = max(bound, math.ceil((top / 2 ** level + extra_cells) / out))
  return bound


@functools.partial(jax.jit, static_argnames=("output_size", "method", "sampling_ratio", "aligned",
                                             "min_level", "canonical_size", "max_sampling_ratio"))
def multilevel_pool(features, boxes, output_size, method="roi_align", sampling_ratio=2,
                    aligned=True, min_level=2, canonical_size=224, max_sampling_ratio=0):
  """Pools each RoI from its FPN level.

  Args:
    features: list of maps [H_l, W_l, C] for levels min_level, min_level + 1, ... (stride 2**l).
    boxes: [R, 4] (x1, y1, x2, y2) canvas pixels.
    output_size: S or (Sh, Sw). method: "roi_align", "roi_pool" or "roi_warp".
    sampling_ratio, aligned: as roi_align (sampling_ratio=0: Detectron2's adaptive grid).
    min_level: the level of features[0].
    max_sampling_ratio: sampling_ratio=0 only: the adaptive grid's static cap G; 0: the
      exact_grid_bound for square RoIs on the canvas the pyramid covers (max over levels of
      2**l * H_l, 2**l * W_l).
    canonical_size: the RoI side that maps to level 4 (224: ImageNet scale). Keep it on small
      canvases too: it sets how many feature cells a pooled RoI spans (224 / 16 = 14 at P4), and
      the strides do not shrink with the canvas.
  Returns:
    [R, Sh, Sw, C], differentiable w.r.t. every level's features.
  """
  if not isinstance(features, (list, tuple)) or not features:
    raise ValueError("features must be a non-empty list of [H, W, C] maps")
  features = [check_array(f"features[{i}]", f, ndim=3, kind="float")
              for i, f in enumerate(features)]
  channels = {f.shape[-1] for f in features}
  if len(channels) != 1 or len({f.dtype for f in features}) != 1:
    raise ValueError("features levels must share channel count and dtype, got "
                     f"{[(tuple(f.shape), str(f.dtype)) for f in features]}")
  boxes = check_array("boxes", boxes, ndim=2, last_dim=4, kind="float")
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  out = check_output_size(output_size)
  max_level = min_level + len(features) - 1
  canvas = max(2 ** (min_level + i) * max(f.shape[:2]) for i, f in enumerate(features))
  grid, adaptive = sampling_grid(sampling_ratio, max_sampling_ratio, exact_grid_bound(
      out, canvas, min_level, max_level, canonical_size, extra_cells=2 * (method == "roi_warp")))
  which = fpn_levels(boxes, min_level, max_level, canonical_size) - min_level  # [R] index into features
  scales = [2.0 ** -(min_level + i) for i in range(len(features))]

  shapes = np.array([f.shape[:2] for f in features], np.int32)  # [L, 2]
  offsets = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])[:-1]]).astype(np.int32)
  flat = jnp.concatenate([f.reshape(-1, f.shape[-1]) for f in features], axis=0)
  if method == "roi_pool":
    first, last = quantize_boxes(jax.lax.stop_gradient(boxes.astype(jnp.float32)),
                                 jnp.asarray(scales, jnp.float32)[which])
    # Exact for RoIs of any shape inside the canvas: the longest spans canvas / 2**min_level cells.
    grid = pool_grid(canvas // 2 ** min_level, out)
    return max_pool_regions(flat, jnp.asarray(offsets)[which], jnp.asarray(shapes)[which], first,
                            last, out, grid)
  start, size = roi_regions(boxes, jnp.asarray(scales, jnp.float32)[which], method, aligned)
  return sample_regions(flat, jnp.asarray(offsets)[which], jnp.asarray(shapes)[which], start, size,
                        out, grid, adaptive)
