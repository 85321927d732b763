"""RoI sampling for the box head (proposal targets) and foreground selection for the mask head.

Per-image functions with static shapes; ``roi_heads.py`` vmaps them over the batch. Sampled RoIs carry
a class label (0 = background, 1..K foreground, -1 = padding when there were too few candidates).
"""

from __future__ import annotations

import jax.numpy as jnp

from mrcnn_jax import ops


def foreground_slots(cfg) -> int:
  """Slots of the S = ``cfg.batch_per_image`` sampled RoIs that can hold foreground (cfg: config.model.roi)."""
  return ops.positive_slots(cfg.batch_per_image, cfg.positive_fraction)


def sample_rois(proposals, proposal_valid, gt_boxes, gt_classes, gt_valid, gt_crowd, key, cfg, box_weights):
  """Appends the GT boxes to the proposals, matches them to GT and samples a fixed-size RoI set.

  Args:
    proposals [P,4], proposal_valid [P]; gt_* [G,...]; cfg: config.model.roi.
  Returns:
    dict: rois [S,4], classes [S] int32 (-1 padding), matched [S] (GT index), box_targets [S,4];
    foreground RoIs come first (``select_foreground`` picks them).
  """
  boxes = jnp.concatenate([proposals, gt_boxes])
  valid = jnp.concatenate([proposal_valid, gt_valid & ~gt_crowd])
  iou = ops.box_iou(gt_boxes, boxes)
  matched, labels = ops.match(iou, gt_valid, gt_crowd, cfg.fg_iou, cfg.fg_iou, allow_low_quality=False)
  labels = jnp.where(valid, labels, -1)
  index, sampled = ops.sample_balanced(key, labels, cfg.batch_per_image, cfg.positive_fraction)
  rois = boxes[index]
  gt_index = matched[index]
  classes = jnp.where(sampled == 1, gt_classes[gt_index], jnp.where(sampled == 0, 0, -1))
  return {
      "rois": rois,
      "classes": classes,
      "matched": gt_index,
      "box_targets": ops.encode_boxes(gt_boxes[gt_index], rois, box_weights),
  }


def select_foreground(classes, count: int):
  """Positions [count] of the foreground RoIs among sampled ``classes`` [S] (in sampling order, which is
  random), and whether each is real [count] bool (False: fewer foreground RoIs than ``count``)."""
  is_fg = classes > 0
  fg = jnp.argsort(-is_fg.astype(jnp.int32), stable=True)[:count]
  return fg, is_fg[fg]


