"""Mask R-CNN: backbone (+FPN or C4) -> RPN -> proposals -> box and mask heads.

``MaskRCNN.losses`` is the training forward pass (a dict of named scalar losses); ``MaskRCNN.detect``
is inference on the fixed canvas.  Both are pure functions of the module state and jit as they are.

Heads (``config.model.head``): "fpn" (P2-P6, 2-FC box head, FCN mask head: the paper's best),
"c4" (one map at stride 16: RoIs pooled from res4 and run through res5, as in Faster R-CNN) and "c5"
(one map at stride 32, res5: 2-FC box head and FCN mask head, the stride-32 setting of Table 2d).

Shapes: B images on a square canvas of side ``config.data.canvas`` (a multiple of 32); G padded GT
instances; P proposals per image; S sampled RoIs per image, F = S * positive_fraction of which can be
foreground (the mask loss trains on all F, or on a random ``mask.rois_per_image`` of them: a static
cap on the mask head's training cost); D detections per image; M mask resolution (28 FPN, 14 C4).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from mrcnn_jax import ops
from mrcnn_jax.model.box_head import BoxPredictor, Res5Head, TwoFCHead
from mrcnn_jax.model.fpn import FPN
from mrcnn_jax.model.mask_head import (FCNMaskHead, MLPMaskHead, Upsample, mask_channels, mask_loss,
                                       mask_probabilities)
from mrcnn_jax.model.pooling import POOLERS, pool_rois
from mrcnn_jax.model.resnet import ResNet
from mrcnn_jax.model.roi_heads import box_losses, detect_boxes, sample_rois
from mrcnn_jax.model.rpn import RPNHead, propose, rpn_losses

SINGLE_LEVEL_STRIDE = {"c4": 16, "c5": 32}  # heads that pool from one feature map
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@functools.lru_cache(maxsize=None)
def _anchors(head, canvas, sizes, ratios):
  """Per-level anchors as numpy constants (computed once per canvas, outside any trace)."""
  with jax.ensure_compile_time_eval():
    if head == "fpn":
      levels = ops.fpn_anchors(canvas, canvas, sizes=sizes, ratios=ratios)
    else:
      levels = [ops.c4_anchors(canvas, canvas, stride=SINGLE_LEVEL_STRIDE[head], sizes=sizes, ratios=ratios)]
    return tuple(np.asarray(a, np.float32) for a in levels)


class MaskRCNN(nnx.Module):

  def __init__(self, config: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
    m = config.model
    if m.head not in ("fpn", "c4", "c5"):
      raise ValueError(f"config.model.head must be 'fpn', 'c4' or 'c5', got {m.head!r}")
    if m.dtype not in DTYPES:
      raise ValueError(f"config.model.dtype must be one of {sorted(DTYPES)}, got {m.dtype!r}")
    if m.pooler not in POOLERS:
      raise ValueError(f"config.model.pooler must be one of {sorted(POOLERS)}, got {m.pooler!r}")
    if config.data.canvas % 32:
      raise ValueError(f"config.data.canvas must be a multiple of 32, got {config.data.canvas}")
    foreground_slots = int(m.roi.batch_per_image * m.roi.positive_fraction)
    if not 0 <= m.mask.rois_per_image <= foreground_slots:
      raise ValueError(f"config.model.mask.rois_per_image must lie in [0, {foreground_slots}] (the "
                       "foreground slots, roi.batch_per_image * roi.positive_fraction; 0 takes them all), "
                       f"got {m.mask.rois_per_image}")
    self.mask_rois = m.mask.rois_per_image or foreground_slots
    self.config = ml_collections.FrozenConfigDict(config)
    dtype = DTYPES[m.dtype]
    c4 = m.head == "c4"
    channels = mask_channels(config.num_classes, m.mask_loss, m.mask_mode)
    self.backbone = ResNet(m.backbone, width=m.width, norm=m.norm, last_stage=4 if c4 else 5, dtype=dtype,
                           rngs=rngs)
    if c4:
      feature_channels = self.backbone.stage_channels[-1]  # res4
      anchors_per_cell = len(m.anchor_ratios) * len(m.anchor_sizes)
      self.rpn_head = RPNHead(feature_channels, anchors_per_cell, dtype=dtype, rngs=rngs)
      self.box_head = Res5Head(m.backbone, m.width, m.norm, dtype=dtype, rngs=rngs)
      mask_features, mask_in = self.box_head.out_features, m.roi.pooler_resolution // 2
    else:
      if m.head == "fpn":
        self.fpn = FPN(self.backbone.stage_channels, m.fpn_channels, norm=m.head_norm, dtype=dtype,
                       rngs=rngs)
        feature_channels, anchors_per_cell = m.fpn_channels, len(m.anchor_ratios)
      else:
        feature_channels = self.backbone.stage_channels[-1]  # res5
        anchors_per_cell = len(m.anchor_ratios) * len(m.anchor_sizes)
      self.rpn_head = RPNHead(feature_channels, anchors_per_cell, dtype=dtype, rngs=rngs)
      self.box_head = TwoFCHead(feature_channels * m.roi.pooler_resolution ** 2, m.roi.fc_dim, dtype=dtype,
                                rngs=rngs)
      mask_features, mask_in = feature_channels, m.mask.pooler_resolution
    self.predictor = BoxPredictor(self.box_head.out_features, config.num_classes, rngs=rngs)
    if m.mask_head == "fcn":
      self.mask_head = (Upsample(mask_features, m.mask.conv_dim, channels, dtype=dtype, rngs=rngs) if c4
                        else FCNMaskHead(mask_features, channels, dim=m.mask.conv_dim, num_convs=m.mask.num_convs,
                                         norm=m.head_norm, dtype=dtype, rngs=rngs))
    elif m.mask_head == "mlp":
      self.mask_head = MLPMaskHead(mask_features * mask_in ** 2, channels, output_size=2 * mask_in,
                                   dim=m.mask.mlp_dim, dtype=dtype, rngs=rngs)
    else:
      raise ValueError(f"config.model.mask_head must be 'fcn' or 'mlp', got {m.mask_head!r}")

  # ---------------------------------------------------------------- shared pieces
  def _features(self, image: jax.Array):
    """image [B,H,W,3] uint8 -> (RPN feature maps, RoI-pooling features)."""
    m = self.config.model
    if image.ndim != 4 or image.shape[-1] != 3 or image.shape[1:3] != (self.config.data.canvas,) * 2:
      raise ValueError(f"image must be [B,{self.config.data.canvas},{self.config.data.canvas},3], got {image.shape}")
    x = (image.astype(jnp.float32) - jnp.asarray(m.pixel_mean)) / jnp.asarray(m.pixel_std)
    features = self.backbone(x.astype(DTYPES[m.dtype]))
    if m.head == "fpn":
      pyramid = self.fpn(features)
      return pyramid, pyramid[:4]
    single = features["res4" if m.head == "c4" else "res5"]
    return [single], single

  def _anchors(self):
    m = self.config.model
    return _anchors(m.head, self.config.data.canvas, tuple(m.anchor_sizes), tuple(m.anchor_ratios))

  def _proposals(self, rpn_logits, rpn_deltas, image_size, training: bool):
    r = self.config.model.rpn
    per_image = functools.partial(
        propose, anchors=self._anchors(),
        pre_nms_topk=r.pre_nms_topk_train if training else r.pre_nms_topk_test,
        post_nms_topk=r.post_nms_topk_train if training else r.post_nms_topk_test,
        nms_threshold=r.nms_threshold, min_size=r.min_size)
    return jax.vmap(lambda lg, dl, size: per_image(lg, dl, image_size=size))(rpn_logits, rpn_deltas, image_size)

  def _pool(self, features, boxes, size):
    m = self.config.model
    return pool_rois(features, boxes, size, method=m.pooler, stride=SINGLE_LEVEL_STRIDE.get(m.head),
                     sampling_ratio=m.roi.sampling_ratio, aligned=m.roi.aligned,
                     canonical_size=m.roi.canonical_size)

  def _box_branch(self, features, rois):
    """rois [B,N,4] -> class logits [B,N,K+1], deltas [B,N,K,4]."""
    b, n = rois.shape[:2]
    pooled = self._pool(features, rois, self.config.model.roi.pooler_resolution)
    x, _ = self.box_head(pooled.reshape(b * n, *pooled.shape[2:]))
    logits, deltas = self.predictor(x)
    return logits.reshape(b, n, -1), deltas.reshape(b, n, *deltas.shape[1:])

  def _mask_logits(self, features, rois):
    """rois [B,N,4] -> mask logits [B*N,M,M,C]."""
    b, n = rois.shape[:2]
    m = self.config.model
    if m.head == "c4":  # res5 runs on 14x14 RoI features; the mask head upsamples its 7x7 output
      pooled = self._pool(features, rois, m.roi.pooler_resolution)
      _, x = self.box_head(pooled.reshape(b * n, *pooled.shape[2:]))
    else:
      pooled = self._pool(features, rois, m.mask.pooler_resolution)
      x = pooled.reshape(b * n, *pooled.shape[2:])
    return self.mask_head(x)

  # ---------------------------------------------------------------- training
  def losses(self, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
    """Training losses for a batch (see ``mrcnn_jax.data`` for its fields) -> named f32 scalars."""
    m = self.config.model
    rpn_features, pool_features = self._features(batch["image"])
    rpn_logits, rpn_deltas = self.rpn_head(rpn_features)
    num_images = batch["image"].shape[0]
    rpn_key, roi_key = jax.random.split(key)
    anchors = jnp.concatenate(self._anchors())
    rpn_cls, rpn_box = jax.vmap(functools.partial(rpn_losses, anchors=anchors, cfg=m.rpn))(
        jnp.concatenate(rpn_logits, axis=1), jnp.concatenate(rpn_deltas, axis=1),
        gt_boxes=batch["gt_boxes"], gt_valid=batch["gt_valid"], gt_crowd=batch["gt_crowd"],
        key=jax.random.split(rpn_key, num_images))
    rpn_norm = m.rpn.batch_per_image * num_images

    proposals, proposal_valid = self._proposals(rpn_logits, rpn_deltas, batch["image_size"], training=True)
    samples = jax.vmap(functools.partial(sample_rois, cfg=m.roi, box_weights=tuple(m.roi.box_weights)))(
        proposals, proposal_valid, batch["gt_boxes"], batch["gt_classes"], batch["gt_valid"],
        batch["gt_crowd"], jax.random.split(roi_key, num_images))
    cls_logits, box_deltas = self._box_branch(pool_features, samples["rois"])
    cls_loss, box_loss = box_losses(cls_logits.reshape(-1, cls_logits.shape[-1]),
                                    box_deltas.reshape(-1, *box_deltas.shape[2:]),
                                    samples["classes"].reshape(-1), samples["box_targets"].reshape(-1, 4))

    # The foreground slots come in random order, so the first ``mask.rois_per_image`` are a random subset.
    fg, fg_valid = samples["fg"][:, :self.mask_rois], samples["fg_valid"][:, :self.mask_rois]
    take = lambda x: jnp.take_along_axis(x, fg.reshape(num_images, -1, *([1] * (x.ndim - 2))), axis=1)
    fg_rois, fg_classes, fg_matched = take(samples["rois"]), take(samples["classes"]), take(samples["matched"])
    logits = self._mask_logits(pool_features, fg_rois)
    targets = jax.vmap(functools.partial(ops.mask_targets, size=logits.shape[1]))(
        batch["gt_masks"], batch["gt_boxes"], fg_rois, fg_matched)
    loss = mask_loss(logits, targets.reshape(-1, *targets.shape[2:]), fg_classes.reshape(-1),
                     fg_valid.reshape(-1), m.mask_loss)
    return {"rpn_cls": rpn_cls.sum() / rpn_norm, "rpn_box": rpn_box.sum() / rpn_norm,
            "cls": cls_loss, "box": box_loss, "mask": loss}

  # ---------------------------------------------------------------- inference
  def detect(self, image: jax.Array, image_size: jax.Array, score_threshold=None,
             nms_threshold=None) -> dict[str, jax.Array]:
    """Detections on the canvas for image [B,H,W,3] uint8 whose content fills image_size [B,2] (h, w).

    ``score_threshold`` / ``nms_threshold`` default to the config's (they may be traced scalars).
    Returns boxes [B,D,4] (canvas pixels), scores [B,D], classes [B,D] (1..K), masks [B,D,M,M]
    (foreground probabilities in the box), valid [B,D].
    """
    m = self.config.model
    rpn_features, pool_features = self._features(image)
    rpn_logits, rpn_deltas = self.rpn_head(rpn_features)
    proposals, proposal_valid = self._proposals(rpn_logits, rpn_deltas, image_size, training=False)
    cls_logits, box_deltas = self._box_branch(pool_features, proposals)
    boxes, scores, classes, valid = jax.vmap(
        functools.partial(
            detect_boxes, cfg=m.roi, box_weights=tuple(m.roi.box_weights),
            score_threshold=m.roi.score_threshold if score_threshold is None else score_threshold,
            nms_threshold=m.roi.nms_threshold if nms_threshold is None else nms_threshold))(
            cls_logits, box_deltas, proposals, proposal_valid, image_size)
    logits = self._mask_logits(pool_features, boxes)
    masks = mask_probabilities(logits, classes.reshape(-1), m.mask_loss).reshape(*classes.shape, *logits.shape[1:3])
    return {"boxes": boxes, "scores": scores, "classes": classes, "masks": masks, "valid": valid}


def build_model(config: ml_collections.ConfigDict, seed: int = 0) -> MaskRCNN:
  """A freshly initialised Mask R-CNN for ``config``."""
  return MaskRCNN(config, rngs=nnx.Rngs(seed))
