"""Fast R-CNN outputs: the class/box predictor, its losses and box inference (static shapes).

``box_losses`` runs over all images' sampled RoIs; ``detect_boxes`` is per image (vmapped by
``roi_heads.py``). Classes: 0 = background, 1..K foreground.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from mrcnn_jax import ops


class BoxPredictor(nnx.Module):
  """Class logits ``cls_score`` (K+1, background = 0) and class-specific box deltas ``bbox_pred`` (K x 4)."""

  def __init__(self, in_features: int, num_classes: int, *, rngs: nnx.Rngs):
    self.cls_score = nnx.Linear(in_features, num_classes + 1, kernel_init=nnx.initializers.normal(0.01),
                                rngs=rngs)
    self.bbox_pred = nnx.Linear(in_features, 4 * num_classes, kernel_init=nnx.initializers.normal(0.001),
                                rngs=rngs)
    self.num_classes = num_classes

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x [N,F] -> logits [N,K+1], deltas [N,K,4], both float32."""
    x = x.astype(jnp.float32)
    return self.cls_score(x), self.bbox_pred(x).reshape(x.shape[0], self.num_classes, 4)


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
  whose clipped box is at least ``cfg.min_box_size`` wide and high is a candidate; the
  ``cfg.candidates_per_image`` best candidates go through per-class NMS (``nms_threshold``) and the
  ``cfg.detections_per_image`` best survive.

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
  big_enough = jnp.minimum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]) >= cfg.min_box_size
  keep = proposal_valid[:, None] & (probs > score_threshold) & big_enough
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
