"""RoI feature pooling for a batch: FPN (level chosen per RoI) or a single feature map (C4).

Wraps the per-image ops in ``mrcnn_jax.ops`` (RoIAlign, or RoIPool / RoIWarp for the paper's ablation)
with ``jax.vmap`` over images.
"""

from __future__ import annotations

import jax

from mrcnn_jax import ops

POOLERS = {"roi_align": ops.roi_align, "roi_pool": ops.roi_pool, "roi_warp": ops.roi_warp}


def pool_rois(features, boxes, output_size, *, method, stride=None, sampling_ratio=2, aligned=True,
              canonical_size=224, max_sampling_ratio=0):
  """Pools RoI features.

  Args:
    features: a list of FPN maps [B,H_l,W_l,C] for levels 2, 3, ... (``stride`` None), or one map
      [B,H,W,C] whose stride is ``stride``.
    boxes: [B,R,4] canvas pixels.
    sampling_ratio, aligned, max_sampling_ratio: as ``ops.roi_align`` (sampling_ratio 0: Detectron2's
      adaptive grid, capped at max_sampling_ratio; 0: the cap exact for every square RoI).
    canonical_size: FPN only: the RoI side assigned to P4.
  Returns:
    [B,R,S,S,C] with S = output_size.
  """
  if method not in POOLERS:
    raise ValueError(f"pooler must be one of {sorted(POOLERS)}, got {method!r}")
  if stride is None:
    def per_image(maps, b):
      return ops.multilevel_pool(maps, b, output_size, method=method, sampling_ratio=sampling_ratio,
                                 aligned=aligned, canonical_size=canonical_size,
                                 max_sampling_ratio=max_sampling_ratio)
  else:
    def per_image(maps, b):
      return POOLERS[method](maps, b, output_size, 1.0 / stride, sampling_ratio=sampling_ratio,
                             aligned=aligned, max_sampling_ratio=max_sampling_ratio)
  return jax.vmap(per_image)(features, boxes)
