"""RoI sampling (proposal targets), box-branch losses and box inference, with static shapes.

Per-image functions; ``mask_rcnn.py`` vmaps them over the batch.  Sampled RoIs carry a class label
(0 = background, 1..K foreground, -1 = padding when there were too few candidates).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from mrcnn_jax import ops


def sample_rois(proposals, proposal_valid, gt_boxes, gt_classes, gt_valid, gt_crowd, key, cfg, box_weights):
  """Appends the GT boxes to the proposals, matches them to GT and samples a fixed-size RoI set.

  Args:
    proposals [P,4], proposal_valid [P]; gt_* [G,...]; cfg: config.model.roi.
  Returns:
    dict: rois [S,4], classes [S] int32 (-1 padding), matched [S] (GT index), box_targets [S,4],
    and ``fg`` [F] (positions in the S sampled RoIs of the foreground ones, F = S * positive_fraction,
    foreground first) with ``fg_valid`` [F].
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
  num_fg = int(cfg.batch_per_image * cfg.positive_fraction)
  fg = jnp.argsort(-(sampled == 1).astype(jnp.int32), stable=True)[:num_fg]
  return {
      "rois": rois,
      "classes": classes,
      "matched": gt_index,
      "box_targets": ops.encode_boxes(gt_boxes[gt_index], rois, box_weights),
      "fg": fg,
      "fg_valid": sampled[fg] == 1,
  }


def box_losses(cls_logits, box_deltas, classes, box_targets):
  """Box-branch losses over all images' sampled RoIs.

  Args:
    cls_logits [N,K+1], box_deltas [N,K,4], classes [N] (-1 = padding), box_targets [N,4].
  Returns:
    (cross-entropy mean over sampled RoIs, L1 on foreground summed / number of sampled RoIs).
  """
  sampled = classes >= 0
  count = jnp.maximum(sampled.sum(), 1)
  ce = optax.softmax_cross_entropy_with_integer_labels(cls_logits, jnp.maximum(classes, 0))
  fg = classes > 0
  deltas = jnp.take_along_axis(box_deltas, jnp.maximum(classes - 1, 0)[:, None, None], axis=1)[:, 0]
  l1 = jnp.abs(deltas - box_targets).sum(-1)
  return jnp.where(sampled, ce, 0.0).sum() / count, jnp.where(fg, l1, 0.0).sum() / count


def detect_boxes(cls_logits, box_deltas, proposals, proposal_valid, image_size, *, score_threshold,
                 nms_threshold, cfg, box_weights):
  """One image's final detections from the box branch.

  Scores are the softmax class probabilities; each (proposal, class) pair above ``score_threshold``
  is a candidate; the ``cfg.candidates_per_image`` best candidates go through per-class NMS
  (``nms_threshold``) and the ``cfg.detections_per_image`` best survive.

  Args:
    cls_logits [P,K+1], box_deltas [P,K,4], proposals [P,4], proposal_valid [P], image_size [2];
    score_threshold, nms_threshold: scalars (may be traced).
  Returns:
    boxes [D,4], scores [D], classes [D] int32 (1..K), valid [D].
  """
  num_classes = box_deltas.shape[1]
  probs = jax.nn.softmax(cls_logits, axis=-1)[:, 1:]
  anchors = jnp.broadcast_to(proposals[:, None], box_deltas.shape)
  boxes = ops.clip_boxes(ops.decode_boxes(box_deltas, anchors, box_weights), image_size[0], image_size[1])
  keep = proposal_valid[:, None] & (probs > score_threshold)
  scores = jnp.where(keep, probs, -jnp.inf).reshape(-1)
  classes = jnp.broadcast_to(jnp.arange(1, num_classes + 1), probs.shape).reshape(-1)
  boxes = boxes.reshape(-1, 4)
  k = min(cfg.candidates_per_image, scores.shape[0])
  scores, top = jax.lax.top_k(scores, k)
  boxes, classes = boxes[top], classes[top]
  index, _ = ops.batched_nms(boxes, scores, classes, nms_threshold, cfg.detections_per_image)
  valid = index >= 0
  index = jnp.maximum(index, 0)
  return (jnp.where(valid[:, None], boxes[index], 0.0), jnp.where(valid, scores[index], 0.0),
          jnp.where(valid, classes[index], 0).astype(jnp.int32), valid)
