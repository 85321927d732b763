"""Multi-level (FPN) RoI pooling: each RoI is pooled from the pyramid level its size calls for.

Level assignment is FPN's eq. (1) as in Detectron2's `assign_boxes_to_levels`:
floor(canonical_level + log2(sqrt(area) / canonical_size + 1e-8)), clamped to
[min_level, max_level].
Level l has stride 2**l, so its spatial_scale is 1 / 2**l.

Static shapes, no grouping of RoIs by level: for RoIAlign and RoIWarp the levels are flattened into
one [sum_l H_l * W_l, C] buffer and every RoI samples its own level through per-RoI offsets, so the
cost is that of a single-level RoIAlign. RoIPool's masked max has no such shortcut: it pools every
RoI at every level and selects (an ablation baseline, kept simple).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from mrcnn_jax.ops._checks import check_array
from mrcnn_jax.ops.roi_pooling import (check_output_size, check_sampling_ratio, roi_pool,
                                     roi_regions, sample_regions)

METHODS = ("roi_align", "roi_pool", "roi_warp")


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def fpn_levels(boxes, min_level=2, max_level=5, canonical_size=224, canonical_level=4):
  """Pyramid level of each box [R, 4] -> [R] int32 in [min_level, max_level]."""
  boxes = check_array("boxes", boxes, ndim=2, last_dim=4, kind="float")
  area = jnp.maximum(boxes[:, 2] - boxes[:, 0], 0.0) * jnp.maximum(boxes[:, 3] - boxes[:, 1], 0.0)
  level = jnp.floor(canonical_level + jnp.log2(jnp.sqrt(area) / canonical_size + 1e-8))
  return jnp.clip(level, min_level, max_level).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("output_size", "method", "sampling_ratio", "aligned",
                                             "min_level", "canonical_size"))
def multilevel_pool(features, boxes, output_size, method="roi_align", sampling_ratio=2,
                    aligned=True, min_level=2, canonical_size=224):
  """Pools each RoI from its FPN level.

  Args:
    features: list of maps [H_l, W_l, C] for levels min_level, min_level + 1, ... (stride 2**l).
    boxes: [R, 4] (x1, y1, x2, y2) canvas pixels.
    output_size: S or (Sh, Sw). method: "roi_align", "roi_pool" or "roi_warp".
    sampling_ratio, aligned: as roi_align.
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
  check_sampling_ratio(sampling_ratio)
  max_level = min_level + len(features) - 1
  which = fpn_levels(boxes, min_level, max_level, canonical_size) - min_level  # [R] index into features
  scales = [2.0 ** -(min_level + i) for i in range(len(features))]

  if method == "roi_pool":
    pooled = jnp.stack([roi_pool(f, boxes, out, s) for f, s in zip(features, scales)])
    return jnp.take_along_axis(pooled, which[None, :, None, None, None], axis=0)[0]

  shapes = np.array([f.shape[:2] for f in features], np.int32)  # [L, 2]
  offsets = np.concatenate([[0], np.cumsum(shapes[:, 0] * shapes[:, 1])[:-1]]).astype(np.int32)
  flat = jnp.concatenate([f.reshape(-1, f.shape[-1]) for f in features], axis=0)
  start, size = roi_regions(boxes, jnp.asarray(scales, jnp.float32)[which], method, aligned)
  return sample_regions(flat, jnp.asarray(offsets)[which], jnp.asarray(shapes)[which], start, size,
                        out, sampling_ratio)
