"""Region Proposal Network: ``RPN`` owns its head and anchors, its losses and static-shape proposals.

Anchors are flattened level by level in (y, x, anchor) order, which is also the order of the head's
outputs, so anchor ``i`` and prediction ``i`` always refer to the same box. The per-image functions
(``rpn_losses``, ``propose``) are ``jax.vmap``-ed over the batch by ``RPN``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from mrcnn_jax import ops


class RPNHead(nnx.Module):
  """Shared 3x3 conv + ReLU (``num_convs`` of them: ``conv``, or a list ``conv/0``, ``conv/1``, ... as
  torchvision's v2), then 1x1 objectness (A) and 1x1 anchor deltas (4A) on every level."""

  def __init__(self, channels: int, num_anchors: int, *, num_convs: int = 1, dtype=None, rngs: nnx.Rngs):
    if num_convs < 1:
      raise ValueError(f"config.model.rpn.num_convs must be >= 1, got {num_convs}")
    init = nnx.initializers.normal(0.01)
    convs = [nnx.Conv(channels, channels, (3, 3), kernel_init=init, dtype=dtype, rngs=rngs) for _ in range(num_convs)]
    self.conv = convs[0] if num_convs == 1 else nnx.List(convs)
    self.objectness_logits = nnx.Conv(channels, num_anchors, (1, 1), kernel_init=init, dtype=dtype, rngs=rngs)
    self.anchor_deltas = nnx.Conv(channels, 4 * num_anchors, (1, 1), kernel_init=init, dtype=dtype, rngs=rngs)

  def __call__(self, features: list[jax.Array]) -> tuple[list[jax.Array], list[jax.Array]]:
    """features: per level [B,H,W,C] -> per level logits [B,H*W*A] and deltas [B,H*W*A,4] (float32)."""
    logits, deltas = [], []
    convs = self.conv if isinstance(self.conv, nnx.List) else [self.conv]
    for x in features:
      for conv in convs:
        x = nnx.relu(conv(x))
      batch = x.shape[0]
      logits.append(self.objectness_logits(x).reshape(batch, -1).astype(jnp.float32))
      deltas.append(self.anchor_deltas(x).reshape(batch, -1, 4).astype(jnp.float32))
    return logits, deltas


@functools.lru_cache(maxsize=None)
def anchors(canvas: tuple[int, int], stride: int | None, sizes: tuple, ratios: tuple,
            rounded: bool) -> tuple[np.ndarray, ...]:
  """Per-level anchors [N_l,4] as numpy constants, computed once per (h, w) canvas outside any trace.

  stride None: the FPN pyramid (one size per level, P2..P6); else one map of that stride, all sizes.
  rounded: cell anchors rounded to integers (``ops.fpn_anchors``).
  """
  with jax.ensure_compile_time_eval():
    if stride is None:
      levels = ops.fpn_anchors(*canvas, sizes=sizes, ratios=ratios, rounded=rounded)
    else:
      levels = [ops.c4_anchors(*canvas, stride=stride, sizes=sizes, ratios=ratios, rounded=rounded)]
    return tuple(np.asarray(a, np.float32) for a in levels)


class RPN(nnx.Module):
  """The proposal generator: ``rpn_head`` on the feature maps, anchor targets and losses, proposals.

  Usage: ``logits, deltas = rpn(features)``, then ``rpn.losses(logits, deltas, batch, key)`` (training)
  and ``rpn.proposals(logits, deltas, image_size, canvas, training)``. The anchors follow the (h, w)
  canvas the features were computed on.
  """

  def __init__(self, cfg, in_channels: int, *, stride: int | None, anchor_sizes, anchor_ratios,
               round_anchors=False, dtype=None, rngs: nnx.Rngs):
    """cfg: config.model.rpn; stride: of the single feature map, or None for the FPN pyramid;
    round_anchors: config.model.round_anchors."""
    self.cfg = cfg
    self.anchor_spec = (stride, tuple(anchor_sizes), tuple(anchor_ratios), bool(round_anchors))
    per_cell = len(anchor_ratios) * (1 if stride is None else len(anchor_sizes))
    self.rpn_head = RPNHead(in_channels, per_cell, num_convs=cfg.num_convs, dtype=dtype, rngs=rngs)

  def anchors(self, canvas: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Per-level anchors [N_l,4] on a (h, w) canvas."""
    return anchors(tuple(int(v) for v in canvas), *self.anchor_spec)

  def __call__(self, features: list[jax.Array]) -> tuple[list[jax.Array], list[jax.Array]]:
    """features: per level [B,H,W,C] -> per level objectness logits [B,N_l] and deltas [B,N_l,4]."""
    return self.rpn_head(features)

  def losses(self, logits, deltas, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
    """{"rpn_cls", "rpn_box"}: sums over sampled anchors / (batch_per_image * B), Detectron2's norm."""
    num_images, *canvas = batch["image"].shape[:3]
    per_image = functools.partial(rpn_losses, anchors=jnp.concatenate(self.anchors(canvas)), cfg=self.cfg)
    cls, box = jax.vmap(per_image)(
        jnp.concatenate(logits, axis=1), jnp.concatenate(deltas, axis=1), gt_boxes=batch["gt_boxes"],
        gt_valid=batch["gt_valid"], gt_crowd=batch["gt_crowd"], key=jax.random.split(key, num_images))
    norm = self.cfg.batch_per_image * num_images
    return {"rpn_cls": cls.sum() / norm, "rpn_box": box.sum() / norm}

  def proposals(self, logits, deltas, image_size: jax.Array, canvas: tuple[int, int], training: bool):
    """-> boxes [B,P,4] (canvas pixels, no gradient), valid [B,P]; P = post-NMS top-k (train/test).

    image_size [B,2]: (h, w) of each image's content on the (h, w) ``canvas``."""
    r = self.cfg
    per_image = functools.partial(
        propose, anchors=self.anchors(canvas),
        pre_nms_topk=r.pre_nms_topk_train if training else r.pre_nms_topk_test,
        post_nms_topk=r.post_nms_topk_train if training else r.post_nms_topk_test,
        nms_threshold=r.nms_threshold, min_size=r.min_size)
    return jax.vmap(lambda lg, dl, size: per_image(lg, dl, image_size=size))(logits, deltas, image_size)


def rpn_losses(logits, deltas, anchors, gt_boxes, gt_valid, gt_crowd, key, cfg):
  """One image's RPN loss sums.

  Args:
    logits [N], deltas [N,4]: predictions for all anchors [N,4]; gt_*: [G,...]; cfg: config.model.rpn.
  Returns:
    (objectness BCE sum, box L1 sum) over the sampled anchors (``RPN.losses`` normalises them).
  """
  iou = ops.box_iou(gt_boxes, anchors)
  matched, labels = ops.match(iou, gt_valid, gt_crowd, cfg.fg_iou, cfg.bg_iou, allow_low_quality=True)
  index, sampled = ops.sample_balanced(key, labels, cfg.batch_per_image, cfg.positive_fraction)
  in_sample = sampled >= 0
  bce = optax.sigmoid_binary_cross_entropy(logits[index], (sampled == 1).astype(jnp.float32))
  targets = ops.encode_boxes(gt_boxes[matched[index]], anchors[index])
  l1 = jnp.abs(deltas[index] - targets).sum(-1)
  return jnp.where(in_sample, bce, 0.0).sum(), jnp.where(sampled == 1, l1, 0.0).sum()


def propose(logits, deltas, anchors, image_size, *, pre_nms_topk, post_nms_topk, nms_threshold, min_size):
  """One image's proposals, padded to ``post_nms_topk``.

  Per level: the ``pre_nms_topk`` highest-scoring anchors, decoded and clipped to the image; boxes
  narrower than ``min_size`` dropped; NMS within each level; the best ``post_nms_topk`` overall.

  Args:
    logits, deltas, anchors: per-level lists of [N_l], [N_l,4], [N_l,4]; image_size [2] (h, w).
  Returns:
    boxes [post_nms_topk,4] (no gradient), valid [post_nms_topk] bool.
  """
  boxes, scores, levels = [], [], []
  for level, (lg, dl, an) in enumerate(zip(logits, deltas, anchors)):
    k = min(pre_nms_topk, lg.shape[0])
    top_scores, top = jax.lax.top_k(lg, k)
    b = ops.clip_boxes(ops.decode_boxes(dl[top], jnp.asarray(an)[top]), image_size[0], image_size[1])
    wide_enough = ((b[:, 2] - b[:, 0]) > min_size) & ((b[:, 3] - b[:, 1]) > min_size)
    boxes.append(b)
    scores.append(jnp.where(wide_enough & jnp.isfinite(top_scores), top_scores, -jnp.inf))
    levels.append(jnp.full((k,), level, jnp.int32))
  boxes, scores, levels = (jnp.concatenate(x) for x in (boxes, scores, levels))
  keep, _ = ops.batched_nms(boxes, scores, levels, nms_threshold, post_nms_topk)
  valid = keep >= 0
  proposals = jnp.where(valid[:, None], boxes[jnp.maximum(keep, 0)], 0.0)
  return jax.lax.stop_gradient(proposals), valid
